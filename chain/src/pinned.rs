//! The pinned deployment against the world. A worker that staked in a registry the coordinator named
//! could be slashed to anyone; so every client reads the chain id and the four addresses from its
//! own config, and refuses to act when the RPC or the coordinator disagree, naming what differs.

use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy_primitives::Address;
use alloy_sol_types::{SolCall, sol};
use qor_protocol::bindings::IProviderRegistry;
use qor_protocol::deployment::Deployment;

sol! {
    /// The escrow's and the storage market's public immutables: which registry slashes and which
    /// committee signs for each.
    interface IEscrowWiring {
        function registry() external view returns (address);
        function committee() external view returns (address);
    }
}

/// Why a client refuses to act on its pinned deployment.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The RPC could not be asked.
    #[error("reaching the chain at {url}: {reason}")]
    Unreachable {
        /// The RPC URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The RPC serves another chain.
    #[error("the RPC at {url} is chain {got}, the pinned deployment is on chain {expected}; refusing to act")]
    WrongChain {
        /// The RPC URL.
        url: String,
        /// Its chain id.
        got: u64,
        /// The pinned one.
        expected: u64,
    },
    /// No contract at a pinned address.
    #[error("no contract at the pinned {name} {address} on chain {chain_id}; refusing to act")]
    NoCode {
        /// Which contract.
        name: &'static str,
        /// Its pinned address.
        address: Address,
        /// The chain.
        chain_id: u64,
    },
    /// The contracts are not wired to each other as pinned.
    #[error("the {contract} at {at} names {wired} as its {what}, the pinned {what} is {expected}; refusing to act")]
    Miswired {
        /// The contract asked.
        contract: &'static str,
        /// Its address.
        at: Address,
        /// What it was asked for.
        what: &'static str,
        /// What it answered.
        wired: Address,
        /// The pinned address.
        expected: Address,
    },
    /// The coordinator names another deployment.
    #[error("the coordinator at {url} names another deployment: {}; refusing to act", differences.join(", "))]
    CoordinatorDisagrees {
        /// The coordinator's URL.
        url: String,
        /// Each field that differs, with its pinned value.
        differences: Vec<String>,
    },
}

async fn call<C: SolCall>(provider: &impl Provider, to: Address, call: C, url: &str) -> Result<C::Return, PinError> {
    let unreachable = |reason: String| PinError::Unreachable { url: url.to_string(), reason };
    let out = provider
        .call(TransactionRequest::default().to(to).input(call.abi_encode().into()))
        .await
        .map_err(|e| unreachable(format!("{}: {e}", C::SIGNATURE)))?;
    C::abi_decode_returns(&out).map_err(|e| unreachable(format!("{}: {e}", C::SIGNATURE)))
}

/// Checks that the chain at `url` (reached through `provider`) is the pinned one: its chain id, code
/// at every pinned address, an escrow and a storage market wired to the pinned registry and committee,
/// and the registry to both.
pub async fn check_chain(provider: &impl Provider, url: &str, pinned: &Deployment) -> Result<(), PinError> {
    let unreachable = |e: String| PinError::Unreachable { url: url.to_string(), reason: e };
    let got = provider.get_chain_id().await.map_err(|e| unreachable(e.to_string()))?;
    if got != pinned.chain_id {
        return Err(PinError::WrongChain { url: url.to_string(), got, expected: pinned.chain_id });
    }
    for (name, address) in pinned.contracts() {
        let code = provider.get_code_at(address).await.map_err(|e| unreachable(e.to_string()))?;
        if code.is_empty() {
            return Err(PinError::NoCode { name, address, chain_id: got });
        }
    }
    let escrow = pinned.job_escrow;
    for (contract, at) in [("jobEscrow", escrow), ("storageMarket", pinned.storage_market)] {
        for (what, wired, expected) in [
            ("registry", call(provider, at, IEscrowWiring::registryCall {}, url).await?, pinned.provider_registry),
            ("committee", call(provider, at, IEscrowWiring::committeeCall {}, url).await?, pinned.verifier_committee),
        ] {
            if wired != expected {
                return Err(PinError::Miswired { contract, at, what, wired, expected });
            }
        }
    }
    let registry = pinned.provider_registry;
    for (what, wired, expected) in [
        ("escrow", call(provider, registry, IProviderRegistry::escrowCall {}, url).await?, escrow),
        ("storageMarket", call(provider, registry, IProviderRegistry::storageMarketCall {}, url).await?, pinned.storage_market),
    ] {
        if wired != expected {
            return Err(PinError::Miswired { contract: "providerRegistry", at: registry, what, wired, expected });
        }
    }
    Ok(())
}

/// Checks a coordinator's account of the deployment (its `GET /v1/chain`) against the pinned one.
pub fn check_coordinator(url: &str, pinned: &Deployment, theirs: &Deployment) -> Result<(), PinError> {
    let differences = pinned.differences(theirs);
    if differences.is_empty() { Ok(()) } else { Err(PinError::CoordinatorDisagrees { url: url.to_string(), differences }) }
}
