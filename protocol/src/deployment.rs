//! The deployment a client pins: the chain id and the addresses of the four contracts, as
//! `anvil/deploy.sh` writes them to `deployments/<chainId>.json`. Every client (worker, verifier,
//! CLI) keeps its own copy in its own config and acts only on it: the coordinator is told nothing it
//! could change, it is only compared against ([`Deployment::differences`]), and any difference means
//! the client refuses to act.

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

/// Chain id and contract addresses (`deployments/<chainId>.json`; other fields of the file are
/// ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The chain the contracts are on.
    pub chain_id: u64,
    /// The block they were deployed at (where event scans start).
    #[serde(default)]
    pub deploy_block: u64,
    /// JobEscrow.
    pub job_escrow: Address,
    /// ProviderRegistry.
    pub provider_registry: Address,
    /// VerifierCommittee.
    pub verifier_committee: Address,
    /// StorageMarket.
    pub storage_market: Address,
}

/// Why a deployment file cannot be pinned.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// Not JSON of the expected shape (the field is named).
    #[error("not a deployment file: {0}")]
    Shape(String),
    /// A contract address is zero.
    #[error("`{0}` is the zero address")]
    ZeroAddress(&'static str),
}

impl Deployment {
    /// Parses a deployment file's bytes and checks that every address is set.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DeploymentError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let d: Self = serde_path_to_error::deserialize(de).map_err(|e| DeploymentError::Shape(format!("`{}`: {}", e.path(), e.inner())))?;
        for (name, address) in d.contracts() {
            if address.is_zero() {
                return Err(DeploymentError::ZeroAddress(name));
            }
        }
        Ok(d)
    }

    /// The four contracts by the names the deployment file gives them.
    pub fn contracts(&self) -> [(&'static str, Address); 4] {
        [
            ("jobEscrow", self.job_escrow),
            ("providerRegistry", self.provider_registry),
            ("verifierCommittee", self.verifier_committee),
            ("storageMarket", self.storage_market),
        ]
    }

    /// What `other` (someone else's account of the deployment: a coordinator's, say) says differently
    /// from this pinned one, one line per field, empty when they agree. The deploy block is not compared:
    /// it moves no money.
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let mut out = Vec::new();
        if self.chain_id != other.chain_id {
            out.push(format!("chain id {} (pinned: {})", other.chain_id, self.chain_id));
        }
        for ((name, pinned), (_, theirs)) in self.contracts().into_iter().zip(other.contracts()) {
            if pinned != theirs {
                out.push(format!("{name} {theirs:#x} (pinned: {pinned:#x})"));
            }
        }
        out
    }
}
