//! The verifier's transactions. One sender per key: every send takes the next nonce from a counter
//! (read once from the node's `pending` count, re-read after a nonce error), the gas limit from an
//! estimate plus a margin, and EIP-1559 fees from the node. The counter is held only while a
//! transaction is handed to the node, not while its receipt is awaited, so several sends can be in
//! the same block (a settlement batch and the finalization of the one before it, say). A send that
//! has no receipt within the timeout is replaced at its own nonce with fees raised by the bump, up to
//! a number of sends; a receipt of any of the replacements ends the wait. A revert found by the
//! estimate is returned with the contract's decoded error before anything is sent.

use std::time::Duration;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolCall;
use qor_protocol::bindings::IJobEscrow::IJobEscrowErrors;
use qor_protocol::bindings::IProviderRegistry::IProviderRegistryErrors;
use qor_protocol::bindings::IStorageMarket::IStorageMarketErrors;
use qor_protocol::bindings::IVerifierCommittee::IVerifierCommitteeErrors;
use qor_protocol::deployment::Deployment;
use tokio::sync::Mutex;
use tracing::{info, warn};

/// Why a send did not land.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The contract refuses it (found by the estimate, or the transaction reverted).
    #[error("{what}: the contract refuses it: {reason}")]
    Refused {
        /// What was sent.
        what: String,
        /// The decoded error, or the node's message.
        reason: String,
    },
    /// The node or the network failed; it may be retried.
    #[error("{what}: {message}")]
    Transport {
        /// What was sent.
        what: String,
        /// The failure.
        message: String,
    },
}

/// Fee and retry policy.
#[derive(Debug, Clone, Copy)]
pub struct SendPolicy {
    /// How long to wait for a receipt before replacing the transaction.
    pub receipt_timeout: Duration,
    /// Percent added to both fees on each replacement.
    pub bump_percent: u64,
    /// Sends at most (the first and its replacements).
    pub max_sends: u32,
}

/// A wallet on the market's chain.
#[derive(Debug)]
pub struct Chain {
    provider: DynProvider,
    /// The verifier's address.
    pub me: Address,
    chain_id: u64,
    policy: SendPolicy,
    nonce: Mutex<Option<u64>>,
}

/// The contract's decoded error, for logs and refusals.
fn decode_refusal(e: &alloy::transports::TransportError) -> String {
    if let Some(payload) = e.as_error_resp() {
        if let Some(err) = payload.as_decoded_interface_error::<IJobEscrowErrors>() {
            return format!("{err:?}");
        }
        if let Some(err) = payload.as_decoded_interface_error::<IVerifierCommitteeErrors>() {
            return format!("{err:?}");
        }
        if let Some(err) = payload.as_decoded_interface_error::<IStorageMarketErrors>() {
            return format!("{err:?}");
        }
        if let Some(err) = payload.as_decoded_interface_error::<IProviderRegistryErrors>() {
            return format!("{err:?}");
        }
        return payload.message.to_string();
    }
    e.to_string()
}

impl Chain {
    /// Connects to `rpc_url` signing with `signer`, once the chain there is the `pinned` deployment's
    /// (chain id, code at every address, the contracts wired to each other).
    pub async fn connect(rpc_url: &str, signer: PrivateKeySigner, pinned: &Deployment, policy: SendPolicy) -> anyhow::Result<Self> {
        let me = signer.address();
        let url = rpc_url.parse().map_err(|e| anyhow::anyhow!("`{rpc_url}` is not a URL: {e}"))?;
        let provider = ProviderBuilder::new().disable_recommended_fillers().wallet(EthereumWallet::from(signer)).connect_http(url).erased();
        qor_chain::pinned::check_chain(&provider, rpc_url, pinned).await?;
        Ok(Self { provider, me, chain_id: pinned.chain_id, policy, nonce: Mutex::new(None) })
    }

    /// The read side.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// An `eth_call` of `call` at `to`.
    pub async fn call<C: SolCall>(&self, to: Address, call: C) -> anyhow::Result<C::Return> {
        let out = self
            .provider
            .call(TransactionRequest::default().with_to(to).with_input(call.abi_encode()))
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", C::SIGNATURE, decode_refusal(&e)))?;
        Ok(C::abi_decode_returns(&out)?)
    }

    /// Sends `call` to `to` and waits for its receipt (see the module's notes).
    pub async fn send<C: SolCall>(&self, to: Address, call: &C, what: &str) -> Result<TransactionReceipt, SendError> {
        self.send_value(to, call, U256::ZERO, what).await
    }

    /// [`Self::send`] with `value` wei attached.
    pub async fn send_value<C: SolCall>(&self, to: Address, call: &C, value: U256, what: &str) -> Result<TransactionReceipt, SendError> {
        let transport = |message: String| SendError::Transport { what: what.to_string(), message };
        let base = TransactionRequest::default()
            .with_from(self.me)
            .with_to(to)
            .with_input(call.abi_encode())
            .with_value(value)
            .with_chain_id(self.chain_id);
        let gas = self.provider.estimate_gas(base.clone()).await.map_err(|e| {
            if e.as_error_resp().is_some() {
                SendError::Refused { what: what.to_string(), reason: decode_refusal(&e) }
            } else {
                transport(e.to_string())
            }
        })?;
        let fees = self.provider.estimate_eip1559_fees().await.map_err(|e| transport(e.to_string()))?;
        let (mut max_fee, mut tip) = (fees.max_fee_per_gas, fees.max_priority_fee_per_gas.max(1));
        let priced = |nonce: u64, max_fee: u128, tip: u128| {
            base.clone().with_nonce(nonce).with_gas_limit(gas + gas / 5).with_max_fee_per_gas(max_fee).with_max_priority_fee_per_gas(tip)
        };
        // The nonce is taken, and the counter moved past it, only once the node has the transaction.
        let (nonce, first) = {
            let mut nonce_slot = self.nonce.lock().await;
            let nonce = match *nonce_slot {
                Some(n) => n,
                None => self.provider.get_transaction_count(self.me).pending().await.map_err(|e| transport(e.to_string()))?,
            };
            match self.provider.send_transaction(priced(nonce, max_fee, tip)).await {
                Ok(pending) => {
                    *nonce_slot = Some(nonce + 1);
                    (nonce, *pending.tx_hash())
                }
                Err(e) => {
                    // Taken by a transaction of ours from before a restart, or refused for a reason
                    // the count may explain: read it again next time.
                    *nonce_slot = None;
                    return Err(transport(format!("sending at nonce {nonce}: {e}")));
                }
            }
        };
        info!(what, tx = %first, nonce, attempt = 1, max_fee, "sent");
        let mut sent = vec![first];
        for attempt in 1..=self.policy.max_sends {
            if attempt > 1 {
                match self.provider.send_transaction(priced(nonce, max_fee, tip)).await {
                    Ok(pending) => {
                        sent.push(*pending.tx_hash());
                        info!(what, tx = %pending.tx_hash(), nonce, attempt, max_fee, "sent");
                    }
                    Err(e) => {
                        let message = e.to_string();
                        if message.contains("nonce too low") || message.contains("already known") {
                            // One of the earlier sends took the nonce (or a replacement is already in).
                            if let Some(r) = self.any_receipt(&sent).await {
                                return self.landed(r, what);
                            }
                            if message.contains("nonce too low") {
                                *self.nonce.lock().await = None;
                                return Err(transport(format!("nonce {nonce} was taken; re-reading it ({message})")));
                            }
                        } else if !message.contains("underpriced") {
                            return Err(transport(message));
                        } else {
                            warn!(what, nonce, attempt, "replacement underpriced; raising the fees");
                        }
                    }
                }
            }
            let deadline = tokio::time::Instant::now() + self.policy.receipt_timeout;
            while tokio::time::Instant::now() < deadline {
                if let Some(r) = self.any_receipt(&sent).await {
                    return self.landed(r, what);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            warn!(what, nonce, attempt, "no receipt in time; replacing with higher fees");
            max_fee += max_fee * u128::from(self.policy.bump_percent) / 100 + 1;
            tip += tip * u128::from(self.policy.bump_percent) / 100 + 1;
        }
        // Whatever is still pending keeps the nonce; the next send re-reads the count.
        *self.nonce.lock().await = None;
        Err(transport(format!("no receipt after {} sends", self.policy.max_sends)))
    }

    /// Sends `call` once without waiting for the receipt (the crash tests' "exit before the
    /// receipt"); returns the transaction's hash.
    pub async fn send_no_wait<C: SolCall>(&self, to: Address, call: &C) -> anyhow::Result<B256> {
        let tx = TransactionRequest::default().with_from(self.me).with_to(to).with_input(call.abi_encode()).with_chain_id(self.chain_id);
        let gas = self.provider.estimate_gas(tx.clone()).await?;
        let nonce = self.provider.get_transaction_count(self.me).pending().await?;
        let fees = self.provider.estimate_eip1559_fees().await?;
        let tx = tx
            .with_nonce(nonce)
            .with_gas_limit(gas + gas / 5)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas.max(1));
        Ok(*self.provider.send_transaction(tx).await?.tx_hash())
    }

    async fn any_receipt(&self, hashes: &[B256]) -> Option<TransactionReceipt> {
        for h in hashes {
            if let Ok(Some(r)) = self.provider.get_transaction_receipt(*h).await {
                return Some(r);
            }
        }
        None
    }

    fn landed(&self, receipt: TransactionReceipt, what: &str) -> Result<TransactionReceipt, SendError> {
        if receipt.status() {
            Ok(receipt)
        } else {
            // Mined but reverted: state changed between the estimate and the block (another verifier).
            Err(SendError::Refused { what: what.to_string(), reason: format!("transaction {} reverted", receipt.transaction_hash) })
        }
    }

    /// The latest block's number and timestamp.
    pub async fn head(&self) -> anyhow::Result<(u64, u64)> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the node has no latest block"))?;
        Ok((block.header.number, block.header.timestamp))
    }

    /// Gas paid by a receipt, in wei.
    pub fn fee_paid(receipt: &TransactionReceipt) -> U256 {
        U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)
    }
}
