//! Opening an object's files (the object file and where its CRCs are) for the handle
//! cache, and creating them: which place holds the CRCs of an object found on disk, and
//! which one a new object gets (`crcs`).

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustre_proto::msg::oss::ObjectId;

use super::crcs::{self, Crcs};
use super::{rw, Create, FileStore, ObjectFiles, ObjectLock};
use crate::oss::error::ObjectError;
use crate::oss::sums::{self, BLOCK};

impl FileStore {
    /// [`Self::handle`] of the object whose lock the caller holds; with `create`, a missing
    /// object is created.
    pub(super) fn handle_held(
        &self,
        held: &ObjectLock<'_>,
        create: Option<Create>,
    ) -> Result<Option<Arc<ObjectFiles>>, ObjectError> {
        let id = held.id;
        if let Some(f) = self.handles.get(id) {
            return Ok(Some(f));
        }
        let path = self.object_path(id);
        let files = match rw().open(&path) {
            Ok(data) => self.opened(id, data)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create {
                Some(create) => self.created(id, create)?,
                None => return Ok(None),
            },
            Err(e) => return Err(ObjectError::io(&path, e)),
        };
        let files = Arc::new(files);
        self.handles.insert(id, files.clone());
        Ok(Some(files))
    }

    /// The files of object `id`, whose object file `data` was just opened: its CRCs from
    /// the attribute if it has one (a sidecar beside it is what an interrupted move left,
    /// and goes), else from its sidecar; an object found with neither gets an empty
    /// sidecar (module doc of `sums`), or an empty attribute when it holds nothing yet.
    fn opened(&self, id: ObjectId, data: File) -> Result<ObjectFiles, ObjectError> {
        let path = self.object_path(id);
        let spath = self.sums_path(id);
        let data = Arc::new(data);
        let found = crcs::stored(&data).map_err(|e| ObjectError::io(&path, e))?;
        let (crcs, created) = match found {
            crcs::Stored::Value(value) => {
                match std::fs::remove_file(&spath) {
                    Ok(()) => {
                        tracing::info!(
                            sidecar = %spath.display(),
                            "removed a sidecar left by an interrupted move of small-object CRCs"
                        );
                        self.mark_dirty(id);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ObjectError::io(&spath, e)),
                }
                (Crcs::in_xattr(data.clone(), value), false)
            }
            crcs::Stored::Missing | crcs::Stored::Unsupported => match rw().open(&spath) {
                Ok(f) => (Crcs::in_sidecar(data.clone(), f), false),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let empty = data
                        .metadata()
                        .map_err(|e| ObjectError::io(&path, e))?
                        .len()
                        == 0;
                    // Made, then a crash before its attribute: nothing to check yet.
                    let header = if empty {
                        self.xattr_header(id, &data)?
                    } else {
                        None
                    };
                    if let Some(header) = header {
                        (Crcs::in_xattr(data.clone(), header), false)
                    } else {
                        let f = rw()
                            .create_new(true)
                            .open(&spath)
                            .map_err(|e| ObjectError::io(&spath, e))?;
                        self.mark_dirty(id);
                        (Crcs::in_sidecar(data.clone(), f), !empty)
                    }
                }
                Err(e) => return Err(ObjectError::io(&spath, e)),
            },
        };
        let crcs_path = || {
            if crcs.is_xattr() {
                path.clone()
            } else {
                spath.clone()
            }
        };
        let version = match crcs
            .read_header()
            .map_err(|e| ObjectError::io(&crcs_path(), e))?
        {
            Some(v) => v,
            None => {
                if created {
                    tracing::warn!(
                        object = %path.display(),
                        "object without checksums: its blocks fail verification unless \
                         zeros until rewritten"
                    );
                } else {
                    tracing::warn!(
                        checksums = %crcs_path().display(),
                        "object checksums with a bad header: header rewritten, version 0"
                    );
                }
                crcs.write_header(0)
                    .map_err(|e| ObjectError::io(&crcs_path(), e))?;
                0
            }
        };
        Ok(ObjectFiles {
            data,
            crcs,
            version: AtomicU64::new(version),
        })
    }

    /// The files of object `id`, created: CRCs in the object file's attribute when the
    /// first write stays within [`crcs::XATTR_ENTRIES_MAX`] blocks and the file system
    /// keeps user attributes, else in a sidecar made first (a crash in between leaves a
    /// sidecar without an object, ignored and reset next time, never an object without
    /// CRCs that holds bytes).
    fn created(&self, id: ObjectId, create: Create) -> Result<ObjectFiles, ObjectError> {
        let small = crcs::fits_xattr(create.reach.saturating_sub(1) / BLOCK);
        let early_sidecar = if small && self.xattrs.load(Ordering::Relaxed) {
            None
        } else {
            Some(self.new_sidecar(id)?)
        };
        let path = self.object_path(id);
        // The file of a deleted object if the pool has one: no inode allocated.
        let taken = self.take_recycled(&path);
        let data = if taken {
            rw().open(&path)
        } else {
            rw().create_new(true).open(&path)
        };
        let data = data.map_err(|e| ObjectError::io(&path, e))?;
        if taken && early_sidecar.is_some() {
            // A kept file has no attribute, unless a power loss undid its removal; with
            // one, the next open would take it for the CRCs and drop the sidecar.
            crcs::unstore(&data).map_err(|e| ObjectError::io(&path, e))?;
        }
        self.mark_dirty(id);
        let data = Arc::new(data);
        let crcs = match early_sidecar {
            Some(sidecar) => Crcs::in_sidecar(data.clone(), sidecar),
            None => match self.xattr_header(id, &data)? {
                Some(header) => Crcs::in_xattr(data.clone(), header),
                // Empty, so a sidecar made after it is as good as one made before.
                None => Crcs::in_sidecar(data.clone(), self.new_sidecar(id)?),
            },
        };
        Ok(ObjectFiles {
            data,
            crcs,
            version: AtomicU64::new(0),
        })
    }

    /// A fresh sidecar of object `id` (an old one, left without its object, is reset), its
    /// header written for version 0.
    pub(super) fn new_sidecar(&self, id: ObjectId) -> Result<File, ObjectError> {
        let spath = self.sums_path(id);
        let sidecar = rw()
            .create(true)
            .truncate(true)
            .open(&spath)
            .map_err(|e| ObjectError::io(&spath, e))?;
        sums::write_header(&sidecar, 0).map_err(|e| ObjectError::io(&spath, e))?;
        self.mark_dirty(id);
        Ok(sidecar)
    }

    /// Gives `data` (object `id`, empty) an attribute holding the header of version 0 and
    /// returns its value; `None` when the store puts no CRCs in attributes, or the file
    /// system keeps no user attributes (then never tried again).
    fn xattr_header(&self, id: ObjectId, data: &File) -> Result<Option<Vec<u8>>, ObjectError> {
        if !self.xattrs.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let header = sums::header(0).to_vec();
        match crcs::store(data, &header) {
            Ok(()) => Ok(Some(header)),
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                if self.xattrs.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        root = %self.root.display(),
                        "no user extended attributes here: every object keeps a checksum sidecar"
                    );
                }
                Ok(None)
            }
            Err(e) => Err(ObjectError::io(&self.object_path(id), e)),
        }
    }
}
