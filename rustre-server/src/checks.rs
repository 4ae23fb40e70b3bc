//! Checks every role applies to what names the cluster and its nodes: node addresses,
//! cluster names and OST indices, with their limits.

use rustre_proto::rpc::MAX_NAME_BYTES;
use rustre_proto::Error;

/// Most OSTs in one cluster.
pub const MAX_OSTS: usize = 4096;
/// Highest OST index accepted.
pub const MAX_OST_INDEX: u32 = 65_535;
/// Longest node address (`host:port`), in bytes.
pub const MAX_ADDR_BYTES: usize = 256;

/// Checks a node address: not empty, bounded, printable, no spaces.
pub fn check_addr(addr: &str) -> Result<(), Error> {
    if addr.is_empty() || addr.len() > MAX_ADDR_BYTES {
        return Err(Error::Invalid(format!(
            "node address must be 1 to {MAX_ADDR_BYTES} bytes"
        )));
    }
    if addr.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid(format!("bad node address {addr:?}")));
    }
    Ok(())
}

/// Checks a cluster name: what the handshake accepts, and printable.
pub fn validate_cluster_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(Error::Invalid(format!(
            "cluster name must be 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid(format!("bad cluster name {name:?}")));
    }
    Ok(())
}

/// Checks an OST index against [`MAX_OST_INDEX`].
pub fn check_ost_index(index: u32) -> Result<(), Error> {
    if index > MAX_OST_INDEX {
        return Err(Error::Invalid(format!(
            "OST index {index} is above the limit {MAX_OST_INDEX}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_names_and_indices_are_bounded_and_printable() {
        assert!(check_addr("host:9400").is_ok());
        assert!(check_addr("").is_err());
        assert!(check_addr("a b:1").is_err());
        assert!(check_addr(&"h".repeat(MAX_ADDR_BYTES + 1)).is_err());
        assert!(validate_cluster_name("rustre").is_ok());
        assert!(validate_cluster_name("").is_err());
        assert!(validate_cluster_name("a\nb").is_err());
        assert!(validate_cluster_name(&"c".repeat(MAX_NAME_BYTES + 1)).is_err());
        assert!(check_ost_index(MAX_OST_INDEX).is_ok());
        let err = check_ost_index(MAX_OST_INDEX + 1).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    }
}
