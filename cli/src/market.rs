//! The buyer's side of the market: uploads and specs at the coordinator, escrow transactions on the
//! chain (sent by the verifier's sender: nonces, fees, reverts decoded to the contract's error).

use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::SolEvent;
use anyhow::{Context, anyhow, bail};
use qor_protocol::bindings::{IJobEscrow, IStorageMarket};
use qor_protocol::deployment::Deployment;
use qor_protocol::merkle::ChunkProof;
use qor_protocol::spec::JobSpec;
use qor_verifier::chain::{Chain, SendPolicy};
use qor_worker::client::Coordinator;
use serde_json::{Value, json};

/// A buyer connected to a coordinator and its chain.
#[derive(Debug)]
pub(crate) struct Market {
    /// The coordinator's base URL.
    pub(crate) base: String,
    http: reqwest::Client,
    client: Coordinator,
    /// Chain id and contract addresses: the pinned deployment, which the chain and the coordinator
    /// agreed with.
    pub(crate) info: Deployment,
    /// The buyer's wallet.
    pub(crate) chain: Chain,
}

/// On-chain job statuses (`IJobEscrow.ComputeJobStatus`).
pub(crate) const STATUS_NAMES: [&str; 7] = ["none", "open", "settled", "challenged", "finalized", "refunded", "reclaimed"];

impl Market {
    /// Connects with `key` as the buyer to the `pinned` deployment, once the chain and the coordinator
    /// agree with it.
    pub(crate) async fn connect(coordinator: &str, rpc_url: &str, key: PrivateKeySigner, info: Deployment) -> anyhow::Result<Self> {
        let base = coordinator.trim_end_matches('/').to_string();
        let signer = qor_worker::keys::protocol_signer(&key);
        let client = Coordinator::new(&base, signer);
        let policy = SendPolicy { receipt_timeout: Duration::from_secs(30), bump_percent: 20, max_sends: 3 };
        let chain = Chain::connect(rpc_url, key, &info, policy).await?;
        let theirs = client.chain().await.map_err(|e| anyhow!("reaching the coordinator at {base}: {e}"))?;
        qor_chain::pinned::check_coordinator(&base, &info, &theirs.deployment())?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| anyhow!("an HTTP client: {e}"))?;
        Ok(Self { base, http, client, info, chain })
    }

    /// The buyer's address.
    pub(crate) fn me(&self) -> Address {
        self.chain.me
    }

    /// `GET` a JSON document from the coordinator.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.client.get(path).await.map_err(|e| anyhow!("GET {path}: {e}"))
    }

    /// Uploads `bytes` as a blob, signed by the buyer (uploads count against its quota); returns its
    /// keccak256.
    pub(crate) async fn put_blob(&self, bytes: Vec<u8>) -> anyhow::Result<B256> {
        let hash = keccak256(&bytes);
        self.client.upload_bytes(bytes).await.map_err(|e| anyhow!("uploading blob {hash}: {e}"))
    }

    /// [`Market::put_blob`], unless the coordinator already holds a blob with this hash (a runtime
    /// every Python job names is sent once, not per job).
    pub(crate) async fn put_blob_once(&self, bytes: Vec<u8>) -> anyhow::Result<B256> {
        let hash = keccak256(&bytes);
        let held = self.http.head(format!("{}/v1/blobs/{hash}", self.base)).send().await.is_ok_and(|r| r.status().is_success());
        if held { Ok(hash) } else { self.put_blob(bytes).await }
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        let r = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body).send().await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Uploads `spec` (its module and inputs must be blobs already).
    pub(crate) async fn post_spec(&self, spec: &JobSpec) -> anyhow::Result<()> {
        self.post("/v1/specs", spec.canonical_json()).await.map(|_| ())
    }

    /// Funds a job for `spec` in the escrow; returns its id.
    pub(crate) async fn fund_job(&self, spec: &JobSpec, budget: U256, provider: Address, deadline_secs: u64) -> anyhow::Result<U256> {
        let (_, now) = self.chain.head().await?;
        let call = IJobEscrow::createComputeJobCall {
            specHash: spec.spec_hash(),
            redundancy: spec.redundancy,
            token: Address::ZERO,
            budget,
            deadline: now + deadline_secs,
            preferredProvider: provider,
        };
        let created: IJobEscrow::ComputeJobCreated = self.send_for_event(self.info.job_escrow, &call, budget, "createComputeJob").await?;
        Ok(created.jobId)
    }

    /// `GET /v1/jobs/{id}`.
    pub(crate) async fn job(&self, id: U256) -> anyhow::Result<Value> {
        self.get(&format!("/v1/jobs/{id}")).await
    }

    /// Job `id` as funded: the coordinator's record of it, once it hashes to the commitment the escrow
    /// keeps (so its spec hash, budget and deadline are the chain's, not the coordinator's word).
    pub(crate) async fn funded_job(&self, id: U256) -> anyhow::Result<IJobEscrow::ComputeJob> {
        let j = self.job(id).await?;
        let text = |k: &str| j[k].as_str().ok_or_else(|| anyhow!("the coordinator's job {id} has no `{k}`"));
        let job = IJobEscrow::ComputeJob {
            specHash: text("specHash")?.parse()?,
            buyer: text("buyer")?.parse()?,
            token: text("token")?.parse()?,
            budget: text("budget")?.parse()?,
            deadline: j["deadline"].as_u64().unwrap_or_default(),
            redundancy: u8::try_from(j["fundedRedundancy"].as_u64().unwrap_or_default())?,
            preferredProvider: text("preferredProvider")?.parse()?,
        };
        let committed = self.chain.call(self.info.job_escrow, IJobEscrow::computeJobCommitmentCall { jobId: id }).await?;
        if keccak256(alloy_sol_types::SolValue::abi_encode(&job)) != committed {
            bail!("the coordinator's record of job {id} is not the one funded in the escrow at {}", self.info.job_escrow);
        }
        Ok(job)
    }

    /// The job's status in the escrow.
    pub(crate) async fn onchain_status(&self, id: U256) -> anyhow::Result<&'static str> {
        let s = self.chain.call(self.info.job_escrow, IJobEscrow::computeJobStatusCall { jobId: id }).await? as usize;
        Ok(STATUS_NAMES.get(s).copied().unwrap_or("unknown"))
    }

    /// Polls `f` every 250 ms until it answers, for at most `secs` seconds.
    pub(crate) async fn until<T>(&self, what: &str, secs: u64, mut f: impl AsyncFnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f().await? {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                bail!("timed out after {secs} s waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Follows job `id` live until `f` answers, for at most `secs` seconds: `f` sees the job again
    /// whenever the coordinator streams an update about it (`/v1/events?job=`), and every 2 s in any
    /// case (a settlement names its jobs in a batch, and a dropped stream is opened again).
    pub(crate) async fn follow<T>(
        &self,
        id: U256,
        secs: u64,
        mut f: impl AsyncFnMut(&Value) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut events: Option<reqwest::Response> = None;
        loop {
            if events.is_none() {
                let url = format!("{}/v1/events?job={id}", self.base);
                events = self.http.get(url).send().await.ok().filter(|r| r.status().is_success());
            }
            let job = self.job(id).await.unwrap_or(Value::Null);
            if let Some(v) = f(&job).await? {
                return Ok(v);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out after {secs} s following job {id} (last seen: {})", job["status"]);
            }
            let quiet = left.min(Duration::from_secs(2));
            match &mut events {
                Some(stream) => match tokio::time::timeout(quiet, stream.chunk()).await {
                    Ok(Ok(Some(_))) | Err(_) => {}
                    Ok(_) => events = None,
                },
                None => tokio::time::sleep(quiet).await,
            }
        }
    }

    /// Asks deal `deal`'s provider to prove chunk `index` now (signed as the buyer), and waits at most
    /// `secs` seconds for its answer: the chunk and its Merkle path, unchecked (the caller checks it
    /// against the root on chain).
    pub(crate) async fn probe(&self, deal: U256, index: u64, secs: u64) -> anyhow::Result<ChunkProof> {
        let posted = self
            .client
            .signed("POST", &format!("/v1/storage/deals/{deal}/probes"), Some(&json!({ "chunkIndex": index })))
            .await
            .map_err(|e| anyhow!("asking for a proof of chunk {index} of deal {deal}: {e}"))?;
        let probe = posted["probeId"].as_i64().ok_or_else(|| anyhow!("unexpected answer: {posted}"))?;
        let answer = self
            .until("the provider's proof", secs, async || {
                let p = self.get(&format!("/v1/storage/deals/{deal}/probes/{probe}")).await?;
                Ok((p["status"] == "answered").then_some(p))
            })
            .await?;
        let chunk = alloy_primitives::hex::decode(answer["chunk"].as_str().unwrap_or_default()).context("the answer's chunk")?;
        let path: Vec<B256> = serde_json::from_value(answer["path"].clone()).context("the answer's path")?;
        Ok(ChunkProof { index, chunk, path })
    }

    /// Registers `bytes` for storage and funds a deal for it: `periods` periods of `period_length`
    /// blocks at `price` wei each, `challenges` chunks challenged a period. Returns the Merkle root and
    /// the deal id.
    pub(crate) async fn store(
        &self,
        bytes: Vec<u8>,
        periods: u16,
        period_length: u32,
        price: u128,
        challenges: u8,
        provider: Address,
    ) -> anyhow::Result<(B256, U256)> {
        let size = bytes.len() as u64;
        let blob = self.put_blob(bytes).await?;
        let file = self.post("/v1/storage/files", serde_json::to_vec(&json!({ "blobHash": blob }))?).await?;
        let root: B256 = file["root"].as_str().and_then(|r| r.parse().ok()).ok_or_else(|| anyhow!("no root in {file}"))?;
        let call = IStorageMarket::createStorageDealCall {
            merkleRoot: root,
            size,
            periods,
            periodLength: period_length,
            pricePerPeriod: alloy_primitives::Uint::from(price),
            challengesPerPeriod: challenges,
            preferredProvider: provider,
        };
        let value = U256::from(price) * U256::from(periods);
        let created: IStorageMarket::StorageDealCreated =
            self.send_for_event(self.info.storage_market, &call, value, "createStorageDeal").await?;
        Ok((root, created.dealId))
    }

    /// Sends `call` with `value` wei to `to` (the escrow or the storage market) and returns the first
    /// `E` its receipt logs.
    async fn send_for_event<C: alloy_sol_types::SolCall, E: SolEvent>(
        &self,
        to: Address,
        call: &C,
        value: U256,
        what: &str,
    ) -> anyhow::Result<E> {
        let r = self.chain.send_value(to, call, value, what).await?;
        r.inner
            .logs()
            .iter()
            .find_map(|l| E::decode_log(&l.inner).ok())
            .map(|e| e.data)
            .ok_or_else(|| anyhow!("no {} in {} ({what})", E::SIGNATURE, r.transaction_hash))
    }

    /// The digest job `id` was settled on, from the escrow's `ComputeBatchSettled` events.
    pub(crate) async fn settled_digest(&self, id: U256) -> anyhow::Result<Option<B256>> {
        use alloy::providers::Provider;
        let filter = alloy::rpc::types::Filter::new()
            .address(self.info.job_escrow)
            .event_signature(IJobEscrow::ComputeBatchSettled::SIGNATURE_HASH)
            .from_block(self.info.deploy_block);
        for log in self.chain.provider().get_logs(&filter).await? {
            let e = IJobEscrow::ComputeBatchSettled::decode_log(&log.inner)?.data;
            if let Some(i) = e.outcome.jobIds.iter().position(|j| *j == id) {
                return Ok(Some(e.resultDigests[i]));
            }
        }
        Ok(None)
    }

    /// Hash it yourself: downloads the stdout and output files of the receipt that carries the digest
    /// job `id` settled on, and recomputes the digest from them. Returns (settled, recomputed, files);
    /// an error when they differ or the job is not settled.
    pub(crate) async fn hash_it_yourself(&self, id: U256) -> anyhow::Result<(B256, B256, usize)> {
        let settled =
            self.settled_digest(id).await?.ok_or_else(|| anyhow!("job {id} is not settled on chain: no digest to check against"))?;
        let j = self.job(id).await?;
        let winner = j["receipts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["resultDigest"].as_str().and_then(|d| d.parse::<B256>().ok()) == Some(settled))
            .cloned()
            .ok_or_else(|| anyhow!("no receipt of job {id} carries the settled digest {settled}"))?;
        let stdout = self.blob(winner["stdoutHash"].as_str().unwrap_or_default().parse()?).await?;
        let exit = u32::try_from(winner["exitCode"].as_u64().unwrap_or_default())?;
        let mut hasher = qor_protocol::digest::ResultHasher::new(exit, &stdout);
        let mut outputs: Vec<(String, B256)> = winner["outputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| Ok((o["path"].as_str().unwrap_or_default().to_string(), o["hash"].as_str().unwrap_or_default().parse()?)))
            .collect::<anyhow::Result<_>>()?;
        outputs.sort();
        for (path, hash) in &outputs {
            hasher.add_file(path, &self.blob(*hash).await?)?;
        }
        let recomputed = hasher.finish();
        if recomputed != settled {
            bail!("job {id}: the result hashes to {recomputed}, the chain settled {settled}");
        }
        Ok((settled, recomputed, outputs.len()))
    }

    /// Blob `hash`, checked against its name (read up to the client's download limit, 1 GiB).
    pub(crate) async fn blob(&self, hash: B256) -> anyhow::Result<Vec<u8>> {
        let r = self.http.get(format!("{}/v1/blobs/{hash}", self.base)).send().await?;
        if !r.status().is_success() {
            bail!("blob {hash}: {}", r.status());
        }
        let bytes = Coordinator::read_capped(r, self.client.max_download_bytes, &format!("blob {hash}")).await?;
        if keccak256(&bytes) != hash {
            bail!("blob {hash}: the bytes hash to {}", keccak256(&bytes));
        }
        Ok(bytes)
    }

    /// The body at `url` (an output, say), read up to the client's download limit.
    pub(crate) async fn download(&self, url: &str, what: &str) -> anyhow::Result<Vec<u8>> {
        let r = self.http.get(url).timeout(Duration::from_secs(3_600)).send().await?;
        if !r.status().is_success() {
            bail!("{what}: {}", r.status());
        }
        Ok(Coordinator::read_capped(r, self.client.max_download_bytes, what).await?)
    }

    /// What `account` can withdraw in wei: from the escrow, and from the storage market.
    pub(crate) async fn withdrawable(&self, account: Address) -> anyhow::Result<(U256, U256)> {
        let escrow = self.chain.call(self.info.job_escrow, IJobEscrow::balanceOfCall { account, token: Address::ZERO }).await?;
        let market = self.chain.call(self.info.storage_market, IStorageMarket::balanceOfCall { account }).await?;
        Ok((escrow, market))
    }

    /// Deal `deal` as the storage market has it.
    pub(crate) async fn onchain_deal(&self, deal: U256) -> anyhow::Result<IStorageMarket::StorageDeal> {
        self.chain.call(self.info.storage_market, IStorageMarket::getStorageDealCall { dealId: deal }).await
    }
}

/// Parses `1ether`, `0.5ether`, `100gwei` or plain wei.
pub(crate) fn parse_amount(text: &str) -> anyhow::Result<U256> {
    qor_worker::config::parse_amount(text)
}

/// `x` wei as ether with up to 6 decimals, or in wei when smaller than that shows.
pub(crate) fn ether(x: U256) -> String {
    if x.is_zero() || x >= U256::from(1_000_000_000_000u64) { qor_worker::config::format_ether(x) } else { format!("{x} wei") }
}
