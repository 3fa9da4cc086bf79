//! The test file system through the kernel: what a power cut keeps after
//! real system calls on a mount, so that the model's assumptions (which
//! calls reach it as which operation) are checked, not only the model.

#![cfg(target_os = "linux")]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use eventfold_powerloss::{Disk, Mount, Survival, fuse_available};

/// A fresh mount in a temporary directory, or `None` (with a SKIP line)
/// where FUSE is not available.
fn mount() -> Option<(tempfile::TempDir, Mount)> {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    if let Err(why) = fuse_available(scratch.path()) {
        let _ = writeln!(std::io::stderr(), "SKIP file system semantics: {why}");
        return None;
    }
    let point = scratch.path().join("mnt");
    fs::create_dir(&point).expect("create the mount point");
    let mount = Mount::new(Disk::new(), &point).expect("mount");
    Some((scratch, mount))
}

fn sync_dir(dir: &Path) {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("sync the directory");
}

#[test]
fn fdatasync_keeps_the_bytes_and_a_directory_sync_the_name() {
    let Some((_scratch, mount)) = mount() else {
        return;
    };
    let root = mount.path().to_path_buf();
    let mut file = File::create(root.join("log")).expect("create");
    file.write_all(b"one\n").expect("write");
    file.sync_data().expect("fdatasync");
    // The name was never synced: a cut now loses the file.
    let lost = mount.disk().after_power_loss(Survival::SyncedOnly);
    assert!(lost.file_at(Path::new("log")).is_none());

    sync_dir(&root);
    file.write_all(b"two\n").expect("write");
    drop(file);
    let disk = mount.unmount();
    let after = disk.after_power_loss(Survival::SyncedOnly);
    assert_eq!(after.file_at(Path::new("log")), Some(&b"one\n"[..]));
}

#[test]
fn an_unsynced_rename_keeps_the_old_name_and_the_old_file() {
    let Some((_scratch, mount)) = mount() else {
        return;
    };
    let root = mount.path().to_path_buf();
    fs::write(root.join("snap"), b"old").expect("write");
    File::open(root.join("snap"))
        .and_then(|f| f.sync_all())
        .expect("fsync");
    sync_dir(&root);
    let mut tmp = File::create(root.join("snap.tmp")).expect("create");
    tmp.write_all(b"new").expect("write");
    tmp.sync_all().expect("fsync");
    drop(tmp);
    fs::rename(root.join("snap.tmp"), root.join("snap")).expect("rename");
    assert_eq!(fs::read(root.join("snap")).expect("read"), b"new");

    // Neither the temporary's name nor the rename reached the disk.
    let after = mount.disk().after_power_loss(Survival::SyncedOnly);
    assert_eq!(after.file_at(Path::new("snap")), Some(&b"old"[..]));
    assert!(after.file_at(Path::new("snap.tmp")).is_none());
    sync_dir(&root);
    let after = mount.unmount().after_power_loss(Survival::SyncedOnly);
    assert_eq!(after.file_at(Path::new("snap")), Some(&b"new"[..]));
    assert!(after.file_at(Path::new("snap.tmp")).is_none());
}

#[test]
fn after_the_cut_every_call_fails_with_eio() {
    let Some((_scratch, mount)) = mount() else {
        return;
    };
    let root = mount.path().to_path_buf();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("log"))
        .expect("create");
    let next = mount.disk().ops();
    mount.disk().cut_at(Some(next + 1));
    file.write_all(b"written\n")
        .expect("the write before the cut");
    let synced = file.sync_data().expect_err("the fdatasync is cut");
    assert_eq!(synced.raw_os_error(), Some(5), "EIO: {synced}");
    let again = fs::create_dir(root.join("d")).expect_err("everything fails after the cut");
    assert_eq!(again.raw_os_error(), Some(5), "EIO: {again}");
    drop(file);
    let disk = mount.unmount();
    assert!(disk.is_cut());
    assert_eq!(
        disk.ops(),
        next + 1 + 1,
        "the cut operation is counted, none after"
    );
}

#[test]
fn a_fresh_mount_of_an_image_shows_what_survived() {
    let Some((scratch, mount)) = mount() else {
        return;
    };
    let root = mount.path().to_path_buf();
    fs::create_dir(root.join("views")).expect("mkdir");
    sync_dir(&root);
    fs::write(root.join("views").join("a"), b"unsynced").expect("write");
    let image = mount.unmount().after_power_loss(Survival::SyncedOnly);
    let again = Mount::new(image, &scratch.path().join("mnt")).expect("mount again");
    let names: Vec<_> = fs::read_dir(again.path().join("views"))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(names.is_empty(), "{names:?}");
    drop(again);
}
