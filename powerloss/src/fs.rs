//! The FUSE file system over a [`Disk`], and its mount.
//!
//! Every request is answered from the disk under one lock, so the kernel
//! sees exactly the disk's current state and every write and sync reaches
//! the disk in the order the programs made them (writes are write-through:
//! no writeback cache is requested). A [`Mount`] is one *boot*: the kernel's
//! caches for it start empty, so mounting the disk after a power loss
//! shows what survived and nothing a cache remembered.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use fuser::{
    BsdFileFlags, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

use crate::disk::{Disk, Fault, Kind, Stat};

/// How long the kernel may cache names and attributes. Nothing changes the
/// disk behind the kernel's back during a boot, so this can be long.
const TTL: Duration = Duration::from_secs(60);

/// The disk, shared by the file system's thread and the test.
type Shared = Arc<Mutex<Disk>>;

fn lock(disk: &Shared) -> MutexGuard<'_, Disk> {
    disk.lock().unwrap_or_else(PoisonError::into_inner)
}

fn errno(fault: Fault) -> Errno {
    match fault {
        Fault::PowerCut => Errno::EIO,
        Fault::NotFound => Errno::ENOENT,
        Fault::Exists => Errno::EEXIST,
        Fault::NotDir => Errno::ENOTDIR,
        Fault::IsDir => Errno::EISDIR,
        Fault::NotEmpty => Errno::ENOTEMPTY,
        Fault::CrossDir => Errno::EXDEV,
        Fault::Invalid => Errno::EINVAL,
    }
}

/// The FUSE side: translates requests into [`Disk`] calls.
struct PowerFs {
    disk: Shared,
    /// Owner reported for every inode: whoever owns the mount point.
    uid: u32,
    gid: u32,
}

impl PowerFs {
    fn attr(&self, ino: u64, stat: Stat) -> FileAttr {
        let kind = match stat.kind {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
        };
        FileAttr {
            ino: INodeNo(ino),
            size: stat.size,
            blocks: stat.size.div_ceil(512),
            atime: stat.mtime,
            mtime: stat.mtime,
            ctime: stat.mtime,
            crtime: stat.mtime,
            kind,
            perm: stat.perm,
            nlink: if stat.kind == Kind::Dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: crate::disk::PAGE as u32,
            flags: 0,
        }
    }

    /// Runs `f` on the disk and answers with the attributes of the inode it
    /// returns.
    fn entry(&self, reply: ReplyEntry, f: impl FnOnce(&mut Disk) -> Result<u64, Fault>) {
        let mut disk = lock(&self.disk);
        match f(&mut disk).and_then(|ino| Ok((ino, disk.stat(ino)?))) {
            Ok((ino, stat)) => reply.entry(&TTL, &self.attr(ino, stat), Generation(0)),
            Err(fault) => reply.error(errno(fault)),
        }
    }

    /// Runs `f` on the disk and answers with success or its error.
    fn empty(&self, reply: ReplyEmpty, f: impl FnOnce(&mut Disk) -> Result<(), Fault>) {
        match f(&mut lock(&self.disk)) {
            Ok(()) => reply.ok(),
            Err(fault) => reply.error(errno(fault)),
        }
    }
}

/// Permission bits of a `mode`.
fn perm(mode: u32) -> u16 {
    (mode & 0o7777) as u16
}

impl Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |d| d.lookup(parent.0, name));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match lock(&self.disk).stat(ino.0) {
            Ok(stat) => reply.attr(&TTL, &self.attr(ino.0, stat)),
            Err(fault) => reply.error(errno(fault)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut disk = lock(&self.disk);
        let result = disk
            .set_attr(ino.0, size, mode.map(perm))
            .and_then(|()| disk.stat(ino.0));
        match result {
            Ok(stat) => reply.attr(&TTL, &self.attr(ino.0, stat)),
            Err(fault) => reply.error(errno(fault)),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.entry(reply, |d| d.mkdir(parent.0, name, perm(mode & !umask)));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |d| d.remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |d| d.remove(parent.0, name, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            reply.error(Errno::EINVAL);
            return;
        }
        self.empty(reply, |d| d.rename(parent.0, name, newparent.0, newname));
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match lock(&self.disk).stat(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(fault) => reply.error(errno(fault)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match lock(&self.disk).read(ino.0, offset, size) {
            Ok(bytes) => reply.data(bytes),
            Err(fault) => reply.error(errno(fault)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match lock(&self.disk).write(ino.0, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(fault) => reply.error(errno(fault)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // `close` makes nothing durable; after the cut it fails like the rest.
        if lock(&self.disk).is_cut() {
            reply.error(Errno::EIO);
        } else {
            reply.ok();
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |d| d.sync_file(ino.0, datasync));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match lock(&self.disk).stat(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(fault) => reply.error(errno(fault)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match lock(&self.disk).entries(ino.0) {
            Ok(entries) => entries,
            Err(fault) => {
                reply.error(errno(fault));
                return;
            }
        };
        let dots = [
            (ino.0, Kind::Dir, OsStr::new(".").to_owned()),
            (ino.0, Kind::Dir, OsStr::new("..").to_owned()),
        ];
        // Offsets are positions in this listing, plus one.
        for (i, (child, kind, name)) in dots
            .into_iter()
            .chain(entries)
            .enumerate()
            .skip(offset as usize)
        {
            let kind = match kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |d| d.sync_dir(ino.0));
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut disk = lock(&self.disk);
        let created = disk
            .create(parent.0, name, perm(mode & !umask))
            .and_then(|ino| Ok((ino, disk.stat(ino)?)));
        match created {
            Ok((ino, stat)) => reply.created(
                &TTL,
                &self.attr(ino, stat),
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(fault) => reply.error(errno(fault)),
        }
    }
}

/// Whether this machine can mount a FUSE file system at all; `Err` says
/// why not. Tries a real mount of an empty disk in a scratch directory
/// under `scratch`.
pub fn fuse_available(scratch: &Path) -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse does not exist (no FUSE in this kernel or container)".to_owned());
    }
    let point = scratch.join("probe");
    std::fs::create_dir_all(&point)
        .map_err(|e| format!("cannot create {}: {e}", point.display()))?;
    let mount = Mount::new(Disk::new(), &point).map_err(|e| {
        format!(
            "mounting a FUSE file system failed: {e} (as root the mount is direct; \
             otherwise the fusermount3 helper of the fuse3 package is needed)"
        )
    })?;
    let probed = std::fs::read_dir(&point).map(|_| ());
    mount.unmount();
    probed.map_err(|e| format!("the FUSE mount does not answer: {e}"))
}

/// A mounted [`Disk`]: one boot. Unmounting gives the disk back.
pub struct Mount {
    session: Option<fuser::BackgroundSession>,
    disk: Shared,
    path: PathBuf,
}

impl fmt::Debug for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mount")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Mount {
    /// Mounts `disk` on the existing directory `path`.
    ///
    /// # Errors
    ///
    /// The error of the mount (no `/dev/fuse`, no permission, no
    /// `fusermount3` when not root).
    pub fn new(disk: Disk, path: &Path) -> io::Result<Mount> {
        let meta = std::fs::metadata(path)?;
        let disk = Arc::new(Mutex::new(disk));
        let fs = PowerFs {
            disk: Arc::clone(&disk),
            uid: meta.uid(),
            gid: meta.gid(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("eventfold-powerloss".to_owned()),
            MountOption::RW,
        ];
        let session = fuser::spawn_mount(fs, path, &config)?;
        Ok(Mount {
            session: Some(session),
            disk,
            path: path.to_path_buf(),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The disk, locked: to set the cut, read the counters, or inspect it.
    /// Do not hold it across file system calls on the mount: the file
    /// system needs the lock to answer them.
    pub fn disk(&self) -> MutexGuard<'_, Disk> {
        lock(&self.disk)
    }

    /// Unmounts (nothing may still use the mount) and returns the disk as
    /// it is, current and durable state alike.
    pub fn unmount(mut self) -> Disk {
        self.stop();
        std::mem::take(&mut *lock(&self.disk))
    }

    fn stop(&mut self) {
        if let Some(session) = self.session.take()
            && let Err(e) = session.umount_and_join()
        {
            eprintln!("powerloss: unmounting {} failed: {e}", self.path.display());
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.stop();
    }
}
