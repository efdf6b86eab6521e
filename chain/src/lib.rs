//! Chain access every client of the market shares. Today: the deployment a client pinned in its own
//! config ([`qor_protocol::deployment::Deployment`]), checked against the chain its RPC reaches
//! ([`check_chain`]) and against what a coordinator says ([`check_coordinator`]) before the client
//! signs or sends anything. A coordinator is trusted for liveness only: it never names the contracts
//! money goes to.

pub mod pinned;
