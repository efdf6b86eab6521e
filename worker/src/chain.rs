//! The provider's transactions and reads on chain: registering and staking in the ProviderRegistry,
//! taking storage deals in the StorageMarket and withdrawing earnings from it and the JobEscrow.

use std::collections::BTreeMap;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, U256};
use alloy_sol_types::{SolCall, SolEvent};
use anyhow::{Context, bail};
use qor_protocol::bindings::IJobEscrow;
use qor_protocol::bindings::IProviderRegistry::{self, ProviderMetadata};
use qor_protocol::bindings::IStorageMarket;
use qor_protocol::deployment::Deployment;

/// A wallet on the market's chain.
#[derive(Debug, Clone)]
pub struct Chain {
    provider: DynProvider,
    /// The provider's address.
    pub me: Address,
    /// The pinned deployment (checked against the chain when connecting).
    pub info: Deployment,
}

/// What the registry says of a provider.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// Registered at all.
    pub registered: bool,
    /// Registered with at least the minimum stake.
    pub active: bool,
    /// Stake, wei.
    #[serde(serialize_with = "decimal")]
    pub stake: U256,
    /// Stake waiting out the unbonding delay, wei.
    #[serde(serialize_with = "decimal")]
    pub unbonding: U256,
    /// When it may be withdrawn (unix seconds; 0: nothing pending).
    pub unbonding_ends_at: u64,
    /// Jobs won.
    pub completed: u64,
    /// Jobs lost.
    pub failed: u64,
    /// Times slashed.
    pub slashed: u64,
    /// The registry's minimum stake.
    #[serde(serialize_with = "decimal")]
    pub min_stake: U256,
    /// No stake can be withdrawn before this (unix seconds): the end of the last challenge window plus
    /// resolution period of a batch that named this provider.
    pub locked_until: u64,
    /// Storage deals this provider holds; while any is open no stake can be withdrawn.
    pub open_deals: u32,
    /// Stake reserved as those deals' collateral, wei; new deals need stake beyond it.
    #[serde(serialize_with = "decimal")]
    pub collateral: U256,
}

impl Chain {
    /// Connects to `rpc_url` signing with `signer`, once the chain there is the pinned deployment's
    /// (chain id, code at every address, the contracts wired to each other).
    pub async fn connect(rpc_url: &str, signer: PrivateKeySigner, info: Deployment) -> anyhow::Result<Self> {
        let me = signer.address();
        let url = rpc_url.parse().with_context(|| format!("`{rpc_url}` is not a URL"))?;
        let provider = ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(url).erased();
        qor_chain::pinned::check_chain(&provider, rpc_url, &info).await?;
        Ok(Self { provider, me, info })
    }

    /// The commitment the escrow keeps of job `job_id` (zero: no such job).
    pub async fn job_commitment(&self, job_id: U256) -> anyhow::Result<alloy_primitives::B256> {
        self.call(self.info.job_escrow, IJobEscrow::computeJobCommitmentCall { jobId: job_id }).await
    }

    /// Deal `deal_id` as the storage market has it.
    pub async fn storage_deal(&self, deal_id: U256) -> anyhow::Result<IStorageMarket::StorageDeal> {
        self.call(self.info.storage_market, IStorageMarket::getStorageDealCall { dealId: deal_id }).await
    }

    /// The hash of block `number` (a storage period's seed), if it is mined.
    pub async fn block_hash(&self, number: u64) -> anyhow::Result<Option<alloy_primitives::B256>> {
        Ok(self.provider.get_block_by_number(number.into()).await?.map(|b| b.header.hash))
    }

    /// The latest block's number.
    pub async fn head(&self) -> anyhow::Result<u64> {
        Ok(self.provider.get_block_number().await?)
    }

    /// Proves `period` of `deal_id` on chain with the challenged `chunks` and their Merkle `paths`.
    pub async fn prove_storage(
        &self,
        deal_id: U256,
        period: u64,
        chunks: Vec<Vec<u8>>,
        paths: Vec<Vec<alloy_primitives::B256>>,
    ) -> anyhow::Result<alloy_primitives::B256> {
        let chunks = chunks.into_iter().map(Into::into).collect();
        let call = IStorageMarket::proveStorageCall { dealId: deal_id, period: U256::from(period), chunks, paths };
        self.send(self.info.storage_market, call.abi_encode(), U256::ZERO, "prove storage").await
    }

    async fn send(&self, to: Address, input: Vec<u8>, value: U256, what: &str) -> anyhow::Result<alloy_primitives::B256> {
        let tx = TransactionRequest::default().with_to(to).with_input(input).with_value(value);
        // A revert is caught by the estimate, with its reason, before anything is sent.
        let pending = self.provider.send_transaction(tx).await.with_context(|| format!("{what}: the transaction was refused"))?;
        let receipt = pending.get_receipt().await.with_context(|| format!("{what}: waiting for the receipt"))?;
        if !receipt.status() {
            bail!("{what}: transaction {} reverted", receipt.transaction_hash);
        }
        Ok(receipt.transaction_hash)
    }

    async fn call<C: SolCall>(&self, to: Address, call: C) -> anyhow::Result<C::Return> {
        let out = self.provider.call(TransactionRequest::default().with_to(to).with_input(call.abi_encode())).await?;
        Ok(C::abi_decode_returns(&out)?)
    }

    /// Registers with `stake` and the asking price, capacity and region.
    pub async fn register(&self, stake: U256, metadata: ProviderMetadata) -> anyhow::Result<alloy_primitives::B256> {
        let call = IProviderRegistry::registerCall { metadata };
        self.send(self.info.provider_registry, call.abi_encode(), stake, "register").await
    }

    /// Updates price, capacity and region.
    pub async fn update_metadata(&self, metadata: ProviderMetadata) -> anyhow::Result<alloy_primitives::B256> {
        let call = IProviderRegistry::updateMetadataCall { metadata };
        self.send(self.info.provider_registry, call.abi_encode(), U256::ZERO, "update metadata").await
    }

    /// Adds stake.
    pub async fn add_stake(&self, amount: U256) -> anyhow::Result<alloy_primitives::B256> {
        self.send(self.info.provider_registry, IProviderRegistry::addStakeCall {}.abi_encode(), amount, "add stake").await
    }

    /// Starts the unbonding of `amount`.
    pub async fn request_stake_withdrawal(&self, amount: U256) -> anyhow::Result<alloy_primitives::B256> {
        let call = IProviderRegistry::requestStakeWithdrawalCall { amount };
        self.send(self.info.provider_registry, call.abi_encode(), U256::ZERO, "request stake withdrawal").await
    }

    /// Withdraws stake whose unbonding delay has passed.
    pub async fn withdraw_stake(&self) -> anyhow::Result<alloy_primitives::B256> {
        self.send(self.info.provider_registry, IProviderRegistry::withdrawStakeCall {}.abi_encode(), U256::ZERO, "withdraw stake").await
    }

    /// Withdraws the balance in `token` (zero: ETH, from the escrow and the storage market both).
    /// Returns the last transaction's hash.
    pub async fn withdraw(&self, token: Address) -> anyhow::Result<alloy_primitives::B256> {
        let mut last = None;
        if !self.call(self.info.job_escrow, IJobEscrow::balanceOfCall { account: self.me, token }).await?.is_zero() {
            let call = IJobEscrow::withdrawCall { token }.abi_encode();
            last = Some(self.send(self.info.job_escrow, call, U256::ZERO, "withdraw from the escrow").await?);
        }
        if token.is_zero() && !self.market_balance().await?.is_zero() {
            let call = IStorageMarket::withdrawCall {}.abi_encode();
            last = Some(self.send(self.info.storage_market, call, U256::ZERO, "withdraw from the storage market").await?);
        }
        last.with_context(|| format!("nothing to withdraw in token {token:#x}"))
    }

    /// Takes storage deal `deal_id`, reserving its collateral out of the stake.
    pub async fn accept_storage_deal(&self, deal_id: U256) -> anyhow::Result<alloy_primitives::B256> {
        let call = IStorageMarket::acceptStorageDealCall { dealId: deal_id };
        self.send(self.info.storage_market, call.abi_encode(), U256::ZERO, "accept storage deal").await
    }

    /// The balance withdrawable in `token`: the escrow's, plus the storage market's for ETH.
    pub async fn balance(&self, token: Address) -> anyhow::Result<U256> {
        let escrow = self.call(self.info.job_escrow, IJobEscrow::balanceOfCall { account: self.me, token }).await?;
        Ok(if token.is_zero() { escrow + self.market_balance().await? } else { escrow })
    }

    async fn market_balance(&self) -> anyhow::Result<U256> {
        self.call(self.info.storage_market, IStorageMarket::balanceOfCall { account: self.me }).await
    }

    /// The account's own ETH.
    pub async fn wallet_balance(&self) -> anyhow::Result<U256> {
        Ok(self.provider.get_balance(self.me).await?)
    }

    /// What the registry says of this provider.
    pub async fn registration(&self) -> anyhow::Result<Registration> {
        let registry = self.info.provider_registry;
        let registered = self.call(registry, IProviderRegistry::isRegisteredCall { provider: self.me }).await?;
        let active = self.call(registry, IProviderRegistry::isActiveCall { provider: self.me }).await?;
        let min_stake = self.call(registry, IProviderRegistry::minStakeCall {}).await?;
        let p = self.call(registry, IProviderRegistry::getProviderCall { provider: self.me }).await?;
        let lock = self.call(registry, IProviderRegistry::stakeLockCall { provider: self.me }).await?;
        Ok(Registration {
            registered,
            active,
            stake: p.stake,
            unbonding: p.unbonding,
            unbonding_ends_at: p.unbondingEndsAt,
            completed: p.jobsCompleted,
            failed: p.jobsFailed,
            slashed: u64::from(p.timesSlashed),
            min_stake,
            locked_until: lock.until,
            open_deals: lock.openDeals,
            collateral: lock.collateral,
        })
    }

    /// Earnings of this provider from settled batches: credited (finalized) by UTC day, and queued
    /// (settled, in the challenge window) in all.
    pub async fn earnings(&self) -> anyhow::Result<Earnings> {
        let escrow = self.info.job_escrow;
        let from = self.info.deploy_block;
        let settled = Filter::new().address(escrow).event_signature(IJobEscrow::ComputeBatchSettled::SIGNATURE_HASH).from_block(from);
        let finalized = Filter::new().address(escrow).event_signature(IJobEscrow::ComputeBatchFinalized::SIGNATURE_HASH).from_block(from);
        let mut payouts: BTreeMap<U256, U256> = BTreeMap::new();
        for log in self.provider.get_logs(&settled).await? {
            let e = IJobEscrow::ComputeBatchSettled::decode_log(&log.inner)?.data;
            let mine: U256 = e.outcome.providers.iter().filter(|p| p.provider == self.me).map(|p| p.payout).sum();
            if !mine.is_zero() {
                payouts.insert(e.batchId, mine);
            }
        }
        let mut by_day: BTreeMap<String, U256> = BTreeMap::new();
        for log in self.provider.get_logs(&finalized).await? {
            let e = IJobEscrow::ComputeBatchFinalized::decode_log(&log.inner)?.data;
            let Some(amount) = payouts.remove(&e.batchId) else { continue };
            let block = log.block_number.unwrap_or_default();
            let header = self.provider.get_block_by_number(block.into()).await?.context("a block with a log exists")?;
            let day = chrono::DateTime::from_timestamp(header.header.inner.timestamp as i64, 0)
                .map_or_else(|| "unknown".into(), |t| t.format("%Y-%m-%d").to_string());
            *by_day.entry(day).or_default() += amount;
        }
        Ok(Earnings { by_day, queued: payouts.values().copied().sum() })
    }
}

/// See [`Chain::earnings`].
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Earnings {
    /// Credited payouts by UTC day of finalization, wei.
    #[serde(serialize_with = "decimal_map")]
    pub by_day: BTreeMap<String, U256>,
    /// Settled but still in the challenge window, wei.
    #[serde(serialize_with = "decimal")]
    pub queued: U256,
}

/// Amounts in JSON are decimal strings of wei (what a person and `cast` read), not hex.
fn decimal<S: serde::Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

fn decimal_map<S: serde::Serializer>(m: &BTreeMap<String, U256>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        map.serialize_entry(k, &v.to_string())?;
    }
    map.end()
}
