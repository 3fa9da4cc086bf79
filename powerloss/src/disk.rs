//! The in-memory disk: what the programs see (the *current* state, as the
//! kernel's cache would hold it) and what a power cut leaves (the *durable*
//! state), with numbered operations and the cut itself.
//!
//! The model, per inode:
//!
//! - a file has current bytes and durable bytes; `fsync` and `fdatasync`
//!   copy the current bytes (and so the size) to the durable ones. Each
//!   4 KiB page written since the last sync is *dirty*; a size change
//!   (truncation, extension) dirties no page: it is metadata;
//! - a directory has current entries and durable entries; `fsync` on the
//!   directory copies the current entries to the durable ones. The entry
//!   changes made since the last sync (creations, unlinks, renames) are
//!   kept in order.
//!
//! Nothing else makes anything durable: not `fsync` on a file for its
//! name, not a rename for the renamed file's name. A rename is an entry
//! change of its directory like any other: after a cut before the
//! directory is synced, the *old* name is there, naming the file with its
//! durable bytes (synced before the rename or not), and the new name holds
//! whatever it held before (or is absent). Renames across directories are
//! refused with `EXDEV`: their half-durable states (in both directories or
//! in neither) are not modelled.
//!
//! [`Disk::after_power_loss`] builds the disk the next boot sees, in one of
//! the [`Survival`] modes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path};
use std::time::SystemTime;

/// Size of a page: the unit in which unsynced data survives a cut in
/// [`Survival::Pages`].
pub const PAGE: u64 = 4096;

/// Inode number of the root directory.
pub const ROOT: u64 = 1;

/// What survives a power cut besides the durable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survival {
    /// Exactly the durable state: every unsynced byte and entry change is
    /// lost.
    SyncedOnly,
    /// The durable state, plus, chosen by `seed`: for each file, either its
    /// durable size or its current size, and each dirty page independently
    /// either with its current bytes or with its durable ones (zeros past
    /// the durable end); for each directory, a prefix of its unsynced entry
    /// changes, in the order they were made (as a journal would commit
    /// them).
    Pages {
        /// Seed of every choice.
        seed: u64,
    },
}

/// Why an operation failed; the file system layer maps each to an errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The power is cut (`EIO`).
    PowerCut,
    /// No such inode or entry (`ENOENT`).
    NotFound,
    /// The name exists (`EEXIST`).
    Exists,
    /// A directory was expected (`ENOTDIR`).
    NotDir,
    /// A file was expected (`EISDIR`).
    IsDir,
    /// The directory is not empty (`ENOTEMPTY`).
    NotEmpty,
    /// A rename across directories (`EXDEV`).
    CrossDir,
    /// An argument this model does not support (`EINVAL`).
    Invalid,
}

/// The kind of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// What `stat` reports about an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// File or directory.
    pub kind: Kind,
    /// Current size in bytes (0 for a directory).
    pub size: u64,
    /// Permission bits.
    pub perm: u16,
    /// Time of the last change.
    pub mtime: SystemTime,
}

/// A file's bytes.
#[derive(Debug, Clone, Default)]
struct FileData {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Pages changed since the last sync.
    dirty: BTreeSet<u64>,
}

/// One change of a directory's entries, as it is replayed on the durable
/// entries.
#[derive(Debug, Clone)]
enum Change {
    /// `name` now names inode `ino` (a creation).
    Link(OsString, u64),
    /// `name` is gone.
    Unlink(OsString),
    /// `from` is now called `to`, replacing what `to` named.
    Rename(OsString, OsString),
}

impl Change {
    fn apply(&self, entries: &mut BTreeMap<OsString, u64>) {
        match self {
            Change::Link(name, ino) => {
                entries.insert(name.clone(), *ino);
            }
            Change::Unlink(name) => {
                entries.remove(name);
            }
            Change::Rename(from, to) => {
                if let Some(ino) = entries.remove(from) {
                    entries.insert(to.clone(), ino);
                }
            }
        }
    }
}

/// A directory's entries.
#[derive(Debug, Clone, Default)]
struct DirData {
    current: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
    /// Changes since the last sync, oldest first: `durable` with all of
    /// them applied is `current`.
    pending: Vec<Change>,
}

impl DirData {
    fn change(&mut self, change: Change) {
        change.apply(&mut self.current);
        self.pending.push(change);
    }
}

#[derive(Debug, Clone)]
enum Body {
    File(FileData),
    Dir(DirData),
}

#[derive(Debug, Clone)]
struct Inode {
    /// The name it was created or last renamed with, for traces.
    name: String,
    perm: u16,
    mtime: SystemTime,
    body: Body,
}

/// The disk: every inode with its current and durable state, the count of
/// mutating operations, and the power switch.
///
/// Every mutating operation (write, size change or other attribute change,
/// create, mkdir, unlink, rmdir, rename, fsync, directory fsync) gets the
/// next number, from 0. With [`cut_at`](Disk::cut_at) set to `N`, operation
/// `N` does not happen: it fails with [`Fault::PowerCut`], and so does every
/// operation after it, reads included.
#[derive(Debug, Clone)]
pub struct Disk {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    ops: u64,
    cut_at: Option<u64>,
    cut: bool,
    trace: Option<Vec<String>>,
}

impl Default for Disk {
    fn default() -> Self {
        Disk::new()
    }
}

impl Disk {
    /// An empty disk: a root directory, durable, and nothing else.
    pub fn new() -> Disk {
        let root = Inode {
            name: "/".to_owned(),
            perm: 0o755,
            mtime: SystemTime::now(),
            body: Body::Dir(DirData::default()),
        };
        Disk {
            inodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            ops: 0,
            cut_at: None,
            cut: false,
            trace: None,
        }
    }

    /// Cuts the power at operation `n` (0-based) of this boot, or never.
    pub fn cut_at(&mut self, n: Option<u64>) {
        self.cut_at = n;
    }

    /// Whether the power has been cut.
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// Mutating operations attempted so far in this boot (the one the cut
    /// refused included).
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// Starts recording a one-line description of every numbered operation
    /// (see [`trace`](Disk::trace)).
    pub fn record_trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    /// The descriptions recorded since [`record_trace`](Disk::record_trace),
    /// indexed by operation number; the last is the one the cut refused,
    /// if there was a cut.
    pub fn trace(&self) -> &[String] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// Numbers the next mutating operation; refuses it if the power is (or
    /// now gets) cut.
    fn begin(&mut self, describe: impl FnOnce(&Disk) -> String) -> Result<(), Fault> {
        self.check_power()?;
        let n = self.ops;
        self.ops += 1;
        // The operation the cut refuses is recorded too: the trace then
        // names what the power was cut at.
        if self.trace.is_some() {
            let line = describe(self);
            if let Some(trace) = &mut self.trace {
                trace.push(line);
            }
        }
        if self.cut_at == Some(n) {
            self.cut = true;
            return Err(Fault::PowerCut);
        }
        Ok(())
    }

    /// Fails every operation once the power is cut.
    fn check_power(&self) -> Result<(), Fault> {
        if self.cut {
            Err(Fault::PowerCut)
        } else {
            Ok(())
        }
    }

    fn inode(&self, ino: u64) -> Result<&Inode, Fault> {
        self.inodes.get(&ino).ok_or(Fault::NotFound)
    }

    fn name_of(&self, ino: u64) -> &str {
        self.inodes.get(&ino).map_or("?", |i| i.name.as_str())
    }

    fn dir(&self, ino: u64) -> Result<&DirData, Fault> {
        match &self.inode(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Fault::NotDir),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirData, Fault> {
        match &mut self.inodes.get_mut(&ino).ok_or(Fault::NotFound)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Fault::NotDir),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileData, Fault> {
        match &mut self.inodes.get_mut(&ino).ok_or(Fault::NotFound)?.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Fault::IsDir),
        }
    }

    fn touch(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.mtime = SystemTime::now();
        }
    }

    // ------------------------------------------------------------ reading

    /// The attributes of `ino`.
    pub fn stat(&self, ino: u64) -> Result<Stat, Fault> {
        self.check_power()?;
        let inode = self.inode(ino)?;
        let (kind, size) = match &inode.body {
            Body::File(f) => (Kind::File, f.current.len() as u64),
            Body::Dir(_) => (Kind::Dir, 0),
        };
        Ok(Stat {
            kind,
            size,
            perm: inode.perm,
            mtime: inode.mtime,
        })
    }

    /// The inode that `name` names in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Fault> {
        self.check_power()?;
        self.dir(parent)?
            .current
            .get(name)
            .copied()
            .ok_or(Fault::NotFound)
    }

    /// Up to `size` bytes of file `ino` from `offset`.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], Fault> {
        self.check_power()?;
        match &self.inode(ino)?.body {
            Body::File(f) => {
                let start = (offset as usize).min(f.current.len());
                let end = start.saturating_add(size as usize).min(f.current.len());
                Ok(&f.current[start..end])
            }
            Body::Dir(_) => Err(Fault::IsDir),
        }
    }

    /// The current entries of directory `ino`: inode, kind and name.
    pub fn entries(&self, ino: u64) -> Result<Vec<(u64, Kind, OsString)>, Fault> {
        self.check_power()?;
        let dir = self.dir(ino)?;
        Ok(dir
            .current
            .iter()
            .map(|(name, &child)| {
                let kind = match self.inodes.get(&child).map(|i| &i.body) {
                    Some(Body::Dir(_)) => Kind::Dir,
                    _ => Kind::File,
                };
                (child, kind, name.clone())
            })
            .collect())
    }

    // ------------------------------------------------------------ writing

    fn new_inode(&mut self, name: &OsStr, perm: u16, body: Body) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                name: name.to_string_lossy().into_owned(),
                perm,
                mtime: SystemTime::now(),
                body,
            },
        );
        ino
    }

    /// Creates a file or directory `name` in `parent`; its entry is an
    /// unsynced change of `parent`.
    fn create_node(
        &mut self,
        parent: u64,
        name: &OsStr,
        perm: u16,
        body: Body,
    ) -> Result<u64, Fault> {
        let kind = if matches!(body, Body::Dir(_)) {
            "mkdir"
        } else {
            "create"
        };
        self.check_power()?;
        if self.dir(parent)?.current.contains_key(name) {
            return Err(Fault::Exists);
        }
        self.begin(|d| format!("{kind} {}/{}", d.name_of(parent), name.to_string_lossy()))?;
        let ino = self.new_inode(name, perm, body);
        self.dir_mut(parent)?
            .change(Change::Link(name.to_owned(), ino));
        self.touch(parent);
        Ok(ino)
    }

    /// Creates an empty file `name` in `parent`.
    pub fn create(&mut self, parent: u64, name: &OsStr, perm: u16) -> Result<u64, Fault> {
        self.create_node(parent, name, perm, Body::File(FileData::default()))
    }

    /// Creates an empty directory `name` in `parent`.
    pub fn mkdir(&mut self, parent: u64, name: &OsStr, perm: u16) -> Result<u64, Fault> {
        self.create_node(parent, name, perm, Body::Dir(DirData::default()))
    }

    /// Removes the entry `name` from `parent`: a file (`dir` false) or an
    /// empty directory (`dir` true). The inode stays (open files keep
    /// working, and a cut brings back the durable entry).
    pub fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Fault> {
        let ino = self.lookup(parent, name)?;
        match (&self.inode(ino)?.body, dir) {
            (Body::File(_), true) => return Err(Fault::NotDir),
            (Body::Dir(_), false) => return Err(Fault::IsDir),
            (Body::Dir(d), true) if !d.current.is_empty() => return Err(Fault::NotEmpty),
            _ => {}
        }
        let verb = if dir { "rmdir" } else { "unlink" };
        self.begin(|d| format!("{verb} {}/{}", d.name_of(parent), name.to_string_lossy()))?;
        self.dir_mut(parent)?
            .change(Change::Unlink(name.to_owned()));
        self.touch(parent);
        Ok(())
    }

    /// Renames `name` to `new_name` within directory `parent`, replacing a
    /// file of that name.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
    ) -> Result<(), Fault> {
        let ino = self.lookup(parent, name)?;
        if new_parent != parent {
            return Err(Fault::CrossDir);
        }
        if let Some(&target) = self.dir(parent)?.current.get(new_name) {
            let moving_dir = matches!(self.inode(ino)?.body, Body::Dir(_));
            match &self.inode(target)?.body {
                Body::Dir(_) if !moving_dir => return Err(Fault::IsDir),
                Body::Dir(d) if !d.current.is_empty() => return Err(Fault::NotEmpty),
                Body::File(_) if moving_dir => return Err(Fault::NotDir),
                _ => {}
            }
        }
        self.begin(|d| {
            format!(
                "rename {}/{} -> {}",
                d.name_of(parent),
                name.to_string_lossy(),
                new_name.to_string_lossy()
            )
        })?;
        if name == new_name {
            return Ok(());
        }
        self.dir_mut(parent)?
            .change(Change::Rename(name.to_owned(), new_name.to_owned()));
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.name = new_name.to_string_lossy().into_owned();
        }
        self.touch(parent);
        Ok(())
    }

    /// Writes `data` at `offset` into file `ino`; returns the bytes written.
    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<usize, Fault> {
        self.check_power()?;
        self.file_mut(ino)?;
        self.begin(|d| format!("write {} {}@{offset}", d.name_of(ino), data.len()))?;
        let file = self.file_mut(ino)?;
        let start = offset as usize;
        let end = start + data.len();
        if file.current.len() < end {
            file.current.resize(end, 0);
        }
        file.current[start..end].copy_from_slice(data);
        if !data.is_empty() {
            file.dirty.extend(offset / PAGE..=(end as u64 - 1) / PAGE);
        }
        self.touch(ino);
        Ok(data.len())
    }

    /// Changes attributes of `ino`: its size if `size` is set, its
    /// permission bits if `perm` is set. Any call is one numbered operation.
    ///
    /// A size change is metadata, like a journaled truncation: it dirties
    /// no page. After a cut the file has its durable size or (in
    /// [`Survival::Pages`]) its current size, and past the current size the
    /// old bytes, never zeros in their place.
    pub fn set_attr(
        &mut self,
        ino: u64,
        size: Option<u64>,
        perm: Option<u16>,
    ) -> Result<(), Fault> {
        self.check_power()?;
        self.inode(ino)?;
        if size.is_some() {
            self.file_mut(ino)?;
        }
        self.begin(|d| match size {
            Some(size) => format!("truncate {} to {size}", d.name_of(ino)),
            None => format!("setattr {}", d.name_of(ino)),
        })?;
        if let Some(size) = size {
            self.file_mut(ino)?.current.resize(size as usize, 0);
        }
        let inode = self.inodes.get_mut(&ino).ok_or(Fault::NotFound)?;
        if let Some(perm) = perm {
            inode.perm = perm;
        }
        inode.mtime = SystemTime::now();
        Ok(())
    }

    /// `fsync` or `fdatasync` of a file: its current bytes become durable.
    /// On a directory, the same as [`sync_dir`](Disk::sync_dir).
    pub fn sync_file(&mut self, ino: u64, datasync: bool) -> Result<(), Fault> {
        self.check_power()?;
        if matches!(self.inode(ino)?.body, Body::Dir(_)) {
            return self.sync_dir(ino);
        }
        let verb = if datasync { "fdatasync" } else { "fsync" };
        self.begin(|d| format!("{verb} {}", d.name_of(ino)))?;
        let file = self.file_mut(ino)?;
        file.durable.clone_from(&file.current);
        file.dirty.clear();
        Ok(())
    }

    /// `fsync` of a directory: its current entries become durable.
    pub fn sync_dir(&mut self, ino: u64) -> Result<(), Fault> {
        self.check_power()?;
        self.dir(ino)?;
        self.begin(|d| format!("fsync dir {}", d.name_of(ino)))?;
        let dir = self.dir_mut(ino)?;
        dir.durable.clone_from(&dir.current);
        dir.pending.clear();
        Ok(())
    }

    // --------------------------------------------------------- power loss

    /// The disk as the next boot finds it after a power cut now: the
    /// durable state, plus what `survival` lets survive. Only what the
    /// surviving entries reach from the root is kept; in the result every
    /// byte and entry is durable, no operation is counted and the power is
    /// on.
    pub fn after_power_loss(&self, survival: Survival) -> Disk {
        let mut out = Disk {
            inodes: HashMap::new(),
            next_ino: self.next_ino,
            ops: 0,
            cut_at: None,
            cut: false,
            trace: None,
        };
        let mut seen = HashSet::new();
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            let Some(inode) = self.inodes.get(&ino) else {
                continue;
            };
            let body = match &inode.body {
                Body::Dir(dir) => {
                    let entries = surviving_entries(dir, ino, survival);
                    stack.extend(entries.values().copied());
                    Body::Dir(DirData {
                        current: entries.clone(),
                        durable: entries,
                        pending: Vec::new(),
                    })
                }
                Body::File(file) => {
                    let bytes = surviving_bytes(file, ino, survival);
                    Body::File(FileData {
                        current: bytes.clone(),
                        durable: bytes,
                        dirty: BTreeSet::new(),
                    })
                }
            };
            out.inodes.insert(
                ino,
                Inode {
                    name: inode.name.clone(),
                    perm: inode.perm,
                    mtime: inode.mtime,
                    body,
                },
            );
        }
        // An entry whose inode is unknown cannot happen; drop it anyway.
        let known: HashSet<u64> = out.inodes.keys().copied().collect();
        for inode in out.inodes.values_mut() {
            if let Body::Dir(d) = &mut inode.body {
                d.current.retain(|_, i| known.contains(i));
                d.durable.retain(|_, i| known.contains(i));
            }
        }
        out
    }

    // -------------------------------------------------- inspection by path

    /// The inode at `path` (relative to the root) in the current entries.
    fn resolve(&self, path: &Path) -> Option<u64> {
        let mut ino = ROOT;
        for part in path.components() {
            match part {
                Component::Normal(name) => ino = *self.dir(ino).ok()?.current.get(name)?,
                Component::CurDir | Component::RootDir => {}
                _ => return None,
            }
        }
        Some(ino)
    }

    /// The current bytes of the file at `path`, relative to the root
    /// (after [`after_power_loss`](Disk::after_power_loss), also the
    /// durable ones); `None` if there is no such file. Ignores the power.
    pub fn file_at(&self, path: &Path) -> Option<&[u8]> {
        match &self.inodes.get(&self.resolve(path)?)?.body {
            Body::File(f) => Some(&f.current),
            Body::Dir(_) => None,
        }
    }

    /// The durable bytes of the file at `path` (found through the current
    /// entries). Ignores the power.
    pub fn durable_file_at(&self, path: &Path) -> Option<&[u8]> {
        match &self.inodes.get(&self.resolve(path)?)?.body {
            Body::File(f) => Some(&f.durable),
            Body::Dir(_) => None,
        }
    }

    /// The names in the directory at `path`, relative to the root; empty
    /// if there is no such directory. Ignores the power.
    pub fn names_at(&self, path: &Path) -> Vec<OsString> {
        self.resolve(path)
            .and_then(|ino| self.dir(ino).ok())
            .map(|d| d.current.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A well-spread hash of `x` (the SplitMix64 finalizer).
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A fair coin for (`seed`, `ino`, `what`): the same three give the same
/// answer, so a crash image can be rebuilt from its seed.
fn coin(seed: u64, ino: u64, what: u64) -> bool {
    mix(seed ^ mix(ino ^ mix(what.wrapping_add(0x51)))) & 1 == 1
}

/// The entries of `dir` (inode `ino`) that the next boot finds.
fn surviving_entries(dir: &DirData, ino: u64, survival: Survival) -> BTreeMap<OsString, u64> {
    let mut entries = dir.durable.clone();
    if let Survival::Pages { seed } = survival
        && !dir.pending.is_empty()
    {
        let kept = mix(seed ^ mix(ino ^ 0xd1e)) % (dir.pending.len() as u64 + 1);
        for change in &dir.pending[..kept as usize] {
            change.apply(&mut entries);
        }
    }
    entries
}

/// The bytes of `file` (inode `ino`) that the next boot finds.
fn surviving_bytes(file: &FileData, ino: u64, survival: Survival) -> Vec<u8> {
    let Survival::Pages { seed } = survival else {
        return file.durable.clone();
    };
    let durable_len = file.durable.len();
    let current_len = file.current.len();
    let len = if durable_len == current_len || coin(seed, ino, u64::MAX) {
        durable_len
    } else {
        current_len
    };
    let mut out = vec![0; len];
    let old = durable_len.min(len);
    out[..old].copy_from_slice(&file.durable[..old]);
    for &page in &file.dirty {
        if !coin(seed, ino, page) {
            continue;
        }
        let start = (page * PAGE) as usize;
        if start >= len {
            continue;
        }
        let end = (start + PAGE as usize).min(len);
        for (i, byte) in out[start..end].iter_mut().enumerate() {
            *byte = file.current.get(start + i).copied().unwrap_or(0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn only_synced_bytes_and_entries_survive() {
        let mut disk = Disk::new();
        let f = disk.create(ROOT, name("f"), 0o644).unwrap();
        disk.write(f, 0, b"hello").unwrap();
        disk.sync_file(f, true).unwrap();
        disk.write(f, 5, b" world").unwrap();
        // The file's name was never synced: nothing survives.
        assert!(
            disk.after_power_loss(Survival::SyncedOnly)
                .file_at(Path::new("f"))
                .is_none()
        );
        disk.sync_dir(ROOT).unwrap();
        let after = disk.after_power_loss(Survival::SyncedOnly);
        assert_eq!(after.file_at(Path::new("f")), Some(&b"hello"[..]));
    }

    #[test]
    fn an_unsynced_rename_leaves_the_old_name() {
        let mut disk = Disk::new();
        let old = disk.create(ROOT, name("snap"), 0o644).unwrap();
        disk.write(old, 0, b"old").unwrap();
        disk.sync_file(old, false).unwrap();
        let tmp = disk.create(ROOT, name("snap.tmp"), 0o644).unwrap();
        disk.sync_dir(ROOT).unwrap();
        disk.write(tmp, 0, b"new").unwrap();
        disk.sync_file(tmp, false).unwrap();
        disk.rename(ROOT, name("snap.tmp"), ROOT, name("snap"))
            .unwrap();
        let after = disk.after_power_loss(Survival::SyncedOnly);
        assert_eq!(after.file_at(Path::new("snap")), Some(&b"old"[..]));
        assert_eq!(after.file_at(Path::new("snap.tmp")), Some(&b"new"[..]));
        disk.sync_dir(ROOT).unwrap();
        let after = disk.after_power_loss(Survival::SyncedOnly);
        assert_eq!(after.file_at(Path::new("snap")), Some(&b"new"[..]));
        assert!(after.file_at(Path::new("snap.tmp")).is_none());
    }

    #[test]
    fn the_cut_refuses_its_operation_and_every_later_one() {
        let mut disk = Disk::new();
        disk.cut_at(Some(1));
        let f = disk.create(ROOT, name("f"), 0o644).unwrap();
        assert_eq!(disk.write(f, 0, b"x"), Err(Fault::PowerCut));
        assert!(disk.is_cut());
        assert_eq!(disk.stat(f), Err(Fault::PowerCut));
        assert_eq!(disk.file_at(Path::new("f")), Some(&b""[..]));
    }

    #[test]
    fn an_unsynced_truncation_leaves_the_old_bytes_or_none() {
        let mut disk = Disk::new();
        let f = disk.create(ROOT, name("f"), 0o644).unwrap();
        disk.sync_dir(ROOT).unwrap();
        disk.write(f, 0, &[7; 3 * PAGE as usize]).unwrap();
        disk.sync_file(f, true).unwrap();
        disk.set_attr(f, Some(0), None).unwrap();
        let mut lens = HashSet::new();
        for seed in 0..50 {
            let after = disk.after_power_loss(Survival::Pages { seed });
            let bytes = after.file_at(Path::new("f")).unwrap();
            assert!(
                bytes.iter().all(|&b| b == 7),
                "no zeros in place of old bytes"
            );
            lens.insert(bytes.len());
        }
        assert_eq!(lens, HashSet::from([0, 3 * PAGE as usize]));
    }

    #[test]
    fn pages_survive_independently_with_zeros_elsewhere() {
        let mut disk = Disk::new();
        let f = disk.create(ROOT, name("f"), 0o644).unwrap();
        disk.sync_dir(ROOT).unwrap();
        disk.write(f, 0, &[1; 4 * PAGE as usize]).unwrap();
        let mut shapes = HashSet::new();
        for seed in 0..200 {
            let after = disk.after_power_loss(Survival::Pages { seed });
            let bytes = after.file_at(Path::new("f")).unwrap();
            assert!(bytes.is_empty() || bytes.len() == 4 * PAGE as usize);
            let pages: Vec<bool> = bytes.chunks(PAGE as usize).map(|p| p[0] == 1).collect();
            for page in bytes.chunks(PAGE as usize) {
                assert!(
                    page.iter().all(|&b| b == page[0]),
                    "a page is whole or zero"
                );
            }
            shapes.insert(pages);
        }
        // Empty, and many of the 16 patterns of four pages.
        assert!(shapes.len() > 10, "{shapes:?}");
    }
}
