//! The pinned deployment: parsed from the file `anvil/deploy.sh` writes, and compared field by field
//! with what anyone else (a coordinator) says it is.

use alloy_primitives::Address;
use qor_protocol::deployment::{Deployment, DeploymentError};

const FILE: &str = r#"{
  "chainId": 31337,
  "deployBlock": 3,
  "owner": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
  "providerRegistry": "0x8464135c8f25da09e49bc8782676a84730c318bc",
  "verifierCommittee": "0x71c95911e9a5d330f4d621842ec243ee1343292e",
  "jobEscrow": "0x948b3c65b89df0b4894abe91e6d02fe579834f8f",
  "storageMarket": "0x712516e61c8b383df4a63cfe83d7701bce54b03e"
}"#;

#[test]
fn a_deployment_file_pins_the_chain_and_the_four_contracts() {
    let d = Deployment::from_json(FILE.as_bytes()).unwrap();
    assert_eq!((d.chain_id, d.deploy_block), (31337, 3));
    assert_eq!(d.job_escrow, "0x948b3c65b89df0b4894abe91e6d02fe579834f8f".parse::<Address>().unwrap());
    assert_eq!(d.storage_market, "0x712516e61c8b383df4a63cfe83d7701bce54b03e".parse::<Address>().unwrap());
    assert!(d.differences(&d).is_empty());
}

#[test]
fn a_bad_deployment_file_names_what_is_wrong() {
    let missing = FILE.replace(r#""jobEscrow""#, r#""escrow""#);
    let e = Deployment::from_json(missing.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("jobEscrow"), "{e}");
    let no_market = FILE.replace(r#""storageMarket""#, r#""market""#);
    let e = Deployment::from_json(no_market.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("storageMarket"), "a deployment without its storage market is refused: {e}");
    let zero = FILE.replace("0x71c95911e9a5d330f4d621842ec243ee1343292e", "0x0000000000000000000000000000000000000000");
    assert!(matches!(Deployment::from_json(zero.as_bytes()), Err(DeploymentError::ZeroAddress("verifierCommittee"))));
}

#[test]
fn every_difference_from_the_pinned_deployment_is_named() {
    let pinned = Deployment::from_json(FILE.as_bytes()).unwrap();
    let theirs = Deployment { chain_id: 1, provider_registry: Address::repeat_byte(0xba), deploy_block: 99, ..pinned };
    let diff = theirs.differences(&pinned);
    let diff_other_way = pinned.differences(&theirs);
    assert_eq!(diff.len(), 2, "the deploy block moves no money: {diff:?}");
    assert!(diff_other_way[0].contains("chain id 1 (pinned: 31337)"), "{diff_other_way:?}");
    assert!(diff_other_way[1].starts_with("providerRegistry 0xbaba") && diff_other_way[1].contains("pinned: 0x8464"), "{diff_other_way:?}");
}
