//! A FUSE file system for power-loss tests: it keeps in memory what the
//! programs see and, separately, what a power cut would leave, numbers
//! every mutating operation, and can cut the power at any of them.
//!
//! - [`Disk`] is the model: current and durable bytes per file, current
//!   and durable entries per directory, the operation counter and the cut.
//!   [`Disk::after_power_loss`] gives the disk the next boot finds, in one
//!   of the [`Survival`] modes.
//! - [`Mount`] mounts a disk (one boot) and gives it back when unmounted.
//!
//! The power-loss test of eventfold itself is `tests/power_loss.rs`. The
//! README below explains the model, the modes and how to run it.
#![doc = ""]
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod disk;
mod fs;

pub use disk::{Disk, Fault, Kind, PAGE, ROOT, Stat, Survival, mix};
pub use fs::{Mount, fuse_available};
