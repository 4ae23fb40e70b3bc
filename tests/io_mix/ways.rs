//! The three ways to a file's bytes the tests mix: buffered pread/pwrite, O_DIRECT
//! pread/pwrite with aligned buffers, and loads and stores through a shared mapping.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Alignment O_DIRECT needs for buffers, offsets and lengths (the page size).
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// How one call reaches the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    Buffered,
    Direct,
    Mapped,
}

impl Way {
    pub(crate) const ALL: [Way; 3] = [Way::Buffered, Way::Direct, Way::Mapped];
}

/// A heap buffer aligned for O_DIRECT.
pub(crate) struct Aligned {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is owned memory like a Vec's.
unsafe impl Send for Aligned {}

impl Aligned {
    pub(crate) fn zeroed(len: usize) -> Aligned {
        let len = len.max(DIRECT_ALIGN);
        let layout = std::alloc::Layout::from_size_align(len, DIRECT_ALIGN).unwrap();
        // SAFETY: a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Aligned { ptr, len }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` initialized bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, DIRECT_ALIGN).unwrap();
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) }
    }
}

/// A shared read-write mapping of the first `len` bytes of a file.
pub(crate) struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; the tests coordinate who touches what.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    pub(crate) fn new(file: &File, len: usize) -> Mapping {
        // SAFETY: a fresh shared mapping of an open file; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(
            ptr,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        Mapping {
            ptr: ptr.cast(),
            len,
        }
    }

    /// Copies `buf` to `at` (which, with `buf`, lies within the file's size).
    pub(crate) fn store(&self, at: usize, buf: &[u8]) {
        assert!(at + buf.len() <= self.len);
        // SAFETY: in bounds of the mapping; the caller keeps it within the file.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.ptr.add(at), buf.len()) }
    }

    /// Copies the bytes at `at` into `buf` (within the file's size).
    pub(crate) fn load(&self, at: usize, buf: &mut [u8]) {
        assert!(at + buf.len() <= self.len);
        // SAFETY: as in `store`.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(at), buf.as_mut_ptr(), buf.len()) }
    }

    /// msync(MS_SYNC) of the pages holding `[at, at + len)`.
    pub(crate) fn sync(&self, at: usize, len: usize) {
        let start = at / DIRECT_ALIGN * DIRECT_ALIGN;
        // SAFETY: a page-aligned range inside the mapping.
        let r = unsafe { libc::msync(self.ptr.add(start).cast(), at + len - start, libc::MS_SYNC) };
        assert_eq!(r, 0, "msync: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The descriptors one thread uses: one buffered, one O_DIRECT.
pub(crate) struct Fds {
    pub(crate) buffered: File,
    pub(crate) direct: File,
}

impl Fds {
    pub(crate) fn open(path: &Path) -> Fds {
        let buffered = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let direct = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .unwrap();
        Fds { buffered, direct }
    }

    /// Writes `data` at `at` the way `way` says (`Direct` needs aligned `at` and length and
    /// an [`Aligned`] buffer; `Mapped` needs the range within the file's size).
    pub(crate) fn write(
        &self,
        way: Way,
        map: &Mapping,
        at: u64,
        data: &[u8],
    ) -> std::io::Result<()> {
        match way {
            Way::Buffered => self.buffered.write_all_at(data, at),
            Way::Direct => self.direct.write_all_at(data, at),
            Way::Mapped => {
                map.store(at as usize, data);
                Ok(())
            }
        }
    }

    /// Reads into `buf` from `at` the way `way` says; the bytes read (short at the end of
    /// the file).
    pub(crate) fn read(
        &self,
        way: Way,
        map: &Mapping,
        at: u64,
        buf: &mut [u8],
    ) -> std::io::Result<usize> {
        match way {
            Way::Buffered => read_full(&self.buffered, at, buf),
            Way::Direct => read_full(&self.direct, at, buf),
            Way::Mapped => {
                map.load(at as usize, buf);
                Ok(buf.len())
            }
        }
    }
}

/// pread until `buf` is full or the end of the file.
fn read_full(f: &File, at: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], at + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// fallocate(2) of `fd`.
pub(crate) fn fallocate(f: &File, mode: i32, at: u64, len: u64) -> std::io::Result<()> {
    // SAFETY: plain syscall on an open descriptor.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, at as i64, len as i64) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
