//! Who may do what beyond POSIX permissions (docs/operations.md, "Root squash and the admin
//! credential"):
//!
//! - Root squash ([`AccessPolicy::root_squash`], `rustre mds --root-squash UID[:GID]`, off
//!   by default): calls from clients as uid 0 run as UID (and gid 0 as GID, group 0
//!   dropped), unless the connection proved the admin secret or comes from an address on
//!   the exempt list ([`AccessPolicy::squash_exempt`]).
//! - The admin check ([`super::dispatch::Call::require_admin`]): administrators' operations
//!   (fsck, moving copies off an OST, declaring a disk lost, and whatever is added later,
//!   such as quota changes) need a connection that proved the admin secret when this MDS
//!   holds one; an MDS without one keeps the old rule (root may).

use std::net::IpAddr;

use rustre_proto::msg::Creds;
use rustre_proto::rpc::server::Caller;

/// The uid and gid squashed root runs as unless told otherwise (`nobody`/`nogroup`).
pub const DEFAULT_SQUASH_ID: u32 = 65534;

/// The identity squashed root calls run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Squash {
    pub uid: u32,
    pub gid: u32,
}

/// An MDS's rules on identities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Root squash: `None` leaves root as root (the default).
    pub root_squash: Option<Squash>,
    /// Client addresses never squashed (trusted admin hosts), beside connections that
    /// proved the admin secret.
    pub squash_exempt: Vec<IpAddr>,
}

/// Parses `UID[:GID]` (GID defaults to UID), e.g. `65534` or `65534:65534`.
pub fn parse_squash(s: &str) -> Result<Squash, String> {
    let num = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("{v:?} is not a numeric id (root squash takes UID[:GID])"))
    };
    let (uid, gid) = match s.split_once(':') {
        Some((u, g)) => (num(u)?, num(g)?),
        None => (num(s)?, num(s)?),
    };
    if uid == 0 {
        return Err("squashing root to uid 0 squashes nothing".into());
    }
    Ok(Squash { uid, gid })
}

impl AccessPolicy {
    /// The identity a call of `creds` from `caller` runs as.
    pub fn effective(&self, mut creds: Creds, caller: &Caller) -> Creds {
        let Some(sq) = self.root_squash else {
            return creds;
        };
        if caller.admin
            || self
                .squash_exempt
                .contains(&caller.addr.ip().to_canonical())
        {
            return creds;
        }
        if creds.uid == 0 {
            creds.uid = sq.uid;
        }
        if creds.gid == 0 {
            creds.gid = sq.gid;
        }
        creds.groups.retain(|g| *g != 0);
        creds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(ip: [u8; 4], admin: bool) -> Caller {
        Caller {
            addr: (ip, 1234).into(),
            admin,
        }
    }

    #[test]
    fn root_is_squashed_unless_admin_or_exempt() {
        let p = AccessPolicy {
            root_squash: Some(parse_squash("500:600").unwrap()),
            squash_exempt: vec!["10.0.0.9".parse().unwrap()],
        };
        let root = Creds {
            uid: 0,
            gid: 0,
            groups: vec![0, 7],
        };
        let squashed = p.effective(root.clone(), &caller([10, 0, 0, 1], false));
        assert_eq!((squashed.uid, squashed.gid), (500, 600));
        assert_eq!(squashed.groups, vec![7]);
        assert_eq!(
            p.effective(root.clone(), &caller([10, 0, 0, 1], true)),
            root
        );
        assert_eq!(
            p.effective(root.clone(), &caller([10, 0, 0, 9], false)),
            root
        );
        let user = Creds {
            uid: 1000,
            gid: 1000,
            groups: vec![],
        };
        assert_eq!(
            p.effective(user.clone(), &caller([10, 0, 0, 1], false)),
            user
        );
        assert_eq!(
            AccessPolicy::default().effective(root.clone(), &caller([1, 1, 1, 1], false)),
            root
        );
    }

    #[test]
    fn squash_ids_parse() {
        assert_eq!(parse_squash("7").unwrap(), Squash { uid: 7, gid: 7 });
        assert_eq!(parse_squash("7:8").unwrap(), Squash { uid: 7, gid: 8 });
        assert!(parse_squash("0").is_err());
        assert!(parse_squash("x").is_err());
        assert!(parse_squash("7:").is_err());
    }
}
