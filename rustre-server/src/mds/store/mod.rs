//! The inode store the operations use inside their transactions: the typed records and
//! get/put helpers ([`records`], re-exported here), and [`put_inode`], which writes an inode
//! with what it counts in its project's quota moved in the same transaction. Inode records
//! of the format before project quotas still read ([`compat`]).

use rustre_proto::msg::quota::NO_PROJECT;
use rustre_proto::msg::{FileKind, Ino};
use rustre_proto::Error;

use crate::meta::Transaction;
use crate::schema;

mod compat;
pub mod records;

pub use records::*;

/// Decodes an inode record of any format ([`compat`]).
pub fn decode_inode(bytes: &[u8]) -> Result<Inode, Error> {
    compat::decode_inode(bytes)
}

/// The inode stored at `inode/{ino}`, if any, in either record format (see [`compat`]).
pub fn get_inode(tx: &mut dyn Transaction, ino: Ino) -> Result<Option<Inode>, Error> {
    match tx.get(&schema::inode(ino))? {
        Some(v) => Ok(Some(compat::decode_inode(&v).map_err(records::corrupt)?)),
        None => Ok(None),
    }
}

/// The inode `ino`, or ENOENT.
pub fn inode(tx: &mut dyn Transaction, ino: Ino) -> Result<Inode, Error> {
    get_inode(tx, ino)?.ok_or(Error::NotFound)
}

/// The directory `ino`: ENOENT if absent, ENOTDIR if not a directory.
pub fn dir(tx: &mut dyn Transaction, ino: Ino) -> Result<Inode, Error> {
    let i = inode(tx, ino)?;
    if i.attr.kind != FileKind::Dir {
        return Err(Error::NotDir);
    }
    Ok(i)
}

/// Writes `inode`; an inode in a project has what it counts in its project's usage moved
/// from the stored record's in the same transaction ([`super::quota::usage::recount`]).
pub fn put_inode(tx: &mut dyn Transaction, inode: &Inode) -> Result<(), Error> {
    if inode.attr.project != NO_PROJECT {
        let old = get_inode(tx, inode.attr.ino)?;
        super::quota::usage::recount(tx, old.as_ref(), Some(inode))?;
    }
    put(tx, &schema::inode(inode.attr.ino), inode)
}
