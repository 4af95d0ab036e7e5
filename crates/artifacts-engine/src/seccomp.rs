//! The seccomp filter generators run under, handed to bubblewrap as a
//! compiled BPF program (`bwrap --seccomp FD`).
//!
//! A deny list, as Flatpak and Docker apply them: system calls a generator
//! has no business making and that are the usual way out of a sandbox or
//! into the kernel's soft spots: new user namespaces (inside one, the caller
//! is root again and can mount, and `--cap-drop` no longer binds), mounts,
//! kernel keyrings, modules, BPF, perf, io_uring, ptrace, `TIOCSTI`. They
//! fail with `ENOSYS`, which programs treat as "not available here" and fall
//! back from (glibc retries `clone3` as `clone`, which we can inspect).
//! Anything else, and other architectures' calls (the x86 32-bit ABI), is
//! decided by the architecture check that opens the program: those kill the
//! process. On x86_64 the same calls through the x32 ABI are denied too.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Denied whatever their arguments.
const DENIED: &[libc::c_long] = &[
    libc::SYS_acct,
    libc::SYS_add_key,
    libc::SYS_bpf,
    libc::SYS_chroot,
    libc::SYS_clone3,
    libc::SYS_delete_module,
    libc::SYS_fanotify_init,
    libc::SYS_finit_module,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fsopen,
    libc::SYS_fspick,
    libc::SYS_get_mempolicy,
    libc::SYS_init_module,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_io_uring_setup,
    libc::SYS_kexec_file_load,
    libc::SYS_kexec_load,
    libc::SYS_keyctl,
    libc::SYS_mbind,
    libc::SYS_migrate_pages,
    libc::SYS_mount,
    libc::SYS_mount_setattr,
    libc::SYS_move_mount,
    libc::SYS_move_pages,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_open_tree,
    libc::SYS_perf_event_open,
    libc::SYS_pivot_root,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_ptrace,
    libc::SYS_quotactl,
    libc::SYS_reboot,
    libc::SYS_request_key,
    libc::SYS_set_mempolicy,
    libc::SYS_setns,
    libc::SYS_swapoff,
    libc::SYS_swapon,
    libc::SYS_syslog,
    libc::SYS_umount2,
    libc::SYS_userfaultfd,
    libc::SYS_vhangup,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_modify_ldt,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// The x32 ABI's bit in system call numbers (x86_64 only).
#[cfg(target_arch = "x86_64")]
const X32: libc::c_long = 0x4000_0000;

/// Denied with these arguments: a new user namespace through `clone` or
/// `unshare`, and faking terminal input.
fn conditional() -> Result<Vec<(libc::c_long, Vec<SeccompRule>)>, seccompiler::BackendError> {
    let flag = |index: u8, bit: u64| {
        SeccompRule::new(vec![SeccompCondition::new(
            index,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(bit),
            bit,
        )?])
    };
    let request = |value: u64| {
        SeccompRule::new(vec![SeccompCondition::new(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            value,
        )?])
    };
    let newuser = libc::CLONE_NEWUSER as u64;
    // The request constants' type differs between C libraries.
    #[allow(clippy::unnecessary_cast)]
    let (tiocsti, tioclinux) = (libc::TIOCSTI as u64, libc::TIOCLINUX as u64);
    Ok(vec![
        (libc::SYS_clone, vec![flag(0, newuser)?]),
        (libc::SYS_unshare, vec![flag(0, newuser)?]),
        (
            libc::SYS_ioctl,
            vec![request(tiocsti)?, request(tioclinux)?],
        ),
    ])
}

/// The compiled program as bytes (`struct sock_filter[]`, native byte order),
/// built once; `None` on architectures seccompiler does not know.
pub(crate) fn program() -> Option<&'static [u8]> {
    static PROGRAM: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| match build() {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                tracing::warn!("generators run without a seccomp filter: {error}");
                None
            }
        })
        .as_deref()
}

fn build() -> Result<Vec<u8>, seccompiler::Error> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &call in DENIED {
        rules.insert(call, Vec::new());
    }
    for (call, chain) in conditional()? {
        rules.insert(call, chain);
    }
    #[cfg(target_arch = "x86_64")]
    {
        // The same calls through the x32 ABI. Its `ioctl` has its own number (514).
        let x32: Vec<(i64, Vec<SeccompRule>)> = rules
            .iter()
            .filter(|(call, _)| **call != libc::SYS_ioctl)
            .map(|(call, chain)| (call | X32, chain.clone()))
            .collect();
        rules.extend(x32);
        if let Some(chain) = rules.get(&libc::SYS_ioctl).cloned() {
            rules.insert(514 | X32, chain);
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    let program: BpfProgram = filter.try_into()?;
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for instruction in &program {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_compiles_to_whole_instructions() {
        let bytes = program().expect("this architecture has a filter");
        assert_eq!(bytes.len() % 8, 0);
        // Well below a pipe's buffer, which carries it to bwrap in one write.
        assert!(bytes.len() < 16 * 1024, "{} bytes", bytes.len());
    }
}
