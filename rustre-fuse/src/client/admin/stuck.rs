//! The stale copies the MDS resync workers could not refill, for `rustre status`.

use bytes::Bytes;
use rustre_proto::msg::mds::{MdsOp, MdsRequest, MdsResponse, StuckCopy};
use rustre_proto::msg::Creds;
use rustre_proto::Error;

use super::Client;

impl Client {
    /// Every MDS's stuck copies (each MDS's resync worker keeps its own), by MDS address;
    /// an MDS that does not answer is listed with its error.
    pub async fn stuck_copies(&self) -> Vec<(String, Result<Vec<StuckCopy>, Error>)> {
        let mut out = Vec::new();
        for peer in self.cluster().mds_peers() {
            let req = MdsRequest {
                creds: Creds::root(),
                session: self.session(),
                seq: 0,
                op: MdsOp::StuckCopies,
            };
            let answer = match peer.call(&req, Bytes::new()).await {
                Ok((MdsResponse::StuckCopies(list), _)) => Ok(list),
                Ok((other, _)) => Err(super::super::unexpected(other)),
                Err(e) => Err(e),
            };
            out.push((peer.addr().to_string(), answer));
        }
        out
    }
}
