"""Kernel isolation layers: what each worker process is confined by.

The server sets up what all workers share once (network/IPC/mount namespaces, a size-capped
tmpfs for scratch dirs, the compiled seccomp filters). Each lane's template process (see
`sandbox.zygote`) applies the lane's layers once, before it forks any worker, and each worker
adds its own right after fork, before it touches untrusted code:

- rlimits: address space, file size, open files, no core dumps (lane); CPU time and one
  process, i.e. no fork (worker);
- setuid: a per-lane unprivileged uid, so RLIMIT_NPROC holds and root's powers are gone (lane);
- landlock: no reading, writing, listing, creating or removing files outside the lane's
  scratch dir, no TCP (lane); no signals or abstract unix sockets outside the worker itself
  (worker: a nested domain of its own). Landlock governs file contents and names only, not
  metadata: the file metadata syscalls are seccomp's (below);
- seccomp: no sockets at all (Landlock does not cover UDP), exec, kill, ptrace, namespace,
  mount, io_uring or bpf; no changing any file's mode, owner, times, extended attributes or
  inode flags, no reading extended attributes, no inotify or fanotify, anywhere, the scratch
  dir included (lane); no fork/clone, pidfd_open, or setting rlimits (worker: a second, small
  filter, so that the long lane filter is compiled and JITed once per lane). Not covered:
  `stat`/`access` of a host path a check can name (whether it exists, its size, times, owner
  and mode; never its contents or a directory's listing), `statfs`.

A layer the kernel or the privileges do not offer is reported (see `Layers`) and skipped; a
layer reported active that then fails to apply stops the worker (fail closed).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import resource
from dataclasses import dataclass, field

# x86_64 / aarch64 generic syscall numbers for Landlock (same on both).
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
# Filesystem rights by ABI version (1: bits 0-12, 2: REFER, 3: TRUNCATE, 5: IOCTL_DEV).
_FS_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1,
              5: (1 << 16) - 1}
_FS_EXECUTE, _FS_REFER = 1 << 0, 1 << 13
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2

_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWNET = 0x00020000, 0x08000000, 0x40000000
_MS_REC, _MS_PRIVATE, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x4000, 1 << 18, 2, 4, 8
_PR_SET_NO_NEW_PRIVS, _PR_SET_DUMPABLE, _PR_SET_PDEATHSIG = 38, 4, 1
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2

# Denied with EPERM by the seccomp filter. Everything else a Python interpreter needs stays
# allowed: the filter is the network/process/kernel-surface boundary, Landlock the file one.
DENIED_SYSCALLS = (
    # network: Landlock only covers TCP, so deny sockets outright (UDP, raw, netlink, unix)
    "socket", "socketpair",
    # new programs and processes (threads too: nothing honest needs them here)
    "execve", "execveat", "fork", "vfork", "clone", "clone3",
    # signals to anyone (the parent, the process group, other workers)
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "pidfd_open", "pidfd_send_signal", "pidfd_getfd",
    # reaching into other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    # namespaces, mounts, privileges, limits
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount",
    "fsconfig", "move_mount", "open_tree", "fspick", "mount_setattr",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid", "capset", "setrlimit", "setpriority", "personality",
    # kernel attack surface a checker never needs
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open",
    "userfaultfd", "keyctl", "add_key", "request_key", "init_module", "finit_module",
    "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct",
    "quotactl", "syslog", "iopl", "ioperm", "open_by_handle_at", "name_to_handle_at",
    "settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "sethostname",
    "setdomainname", "mknod", "mknodat", "fanotify_init", "lookup_dcookie", "vhangup",
    "memfd_create", "memfd_secret", "move_pages", "migrate_pages", "msgget", "semget", "shmget",
    "mq_open", "uselib", "nfsservctl", "chown", "fchown", "lchown", "fchownat",
    # file metadata: Landlock rules cover reading, writing, creating and removing files, not
    # their attributes, so without these an escaped check could change the mode, times and
    # extended attributes of any host file its uid may (world-writable ones included), read
    # extended attributes, and watch host directories (inotify reports the names of the files
    # created there)
    "chmod", "fchmod", "fchmodat", "fchmodat2", "utime", "utimes", "utimensat", "futimesat",
    "setxattr", "lsetxattr", "fsetxattr", "setxattrat", "removexattr", "lremovexattr",
    "fremovexattr", "removexattrat", "getxattr", "lgetxattr", "fgetxattr", "getxattrat",
    "listxattr", "llistxattr", "flistxattr", "listxattrat", "file_getattr", "file_setattr",
    "inotify_init", "inotify_init1", "inotify_add_watch", "fanotify_mark",
)
_UNIFIED_NUMBERS = {"fchmodat2": 452, "setxattrat": 463, "getxattrat": 464, "listxattrat": 465,
                    "removexattrat": 466, "file_getattr": 468, "file_setattr": 469}
"""Syscalls newer than some libseccomp releases know by name: numbered alike on every
architecture since Linux 5.1, so they are denied by number where the name does not resolve."""
WORKER_ONLY_DENIED = ("fork", "vfork", "clone", "clone3", "pidfd_open", "setrlimit")
"""What the lane template still needs (to fork workers, give the server their pidfds, and let
them set their own limits), so only each worker's own filter denies it (with prlimit64 sets)."""
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C
# Inode flags (chattr: nodump, noatime...) and the fsxattr that holds them: metadata too.
_FS_IOC_SETFLAGS, _FS_IOC32_SETFLAGS, _FS_IOC_FSSETXATTR = 0x40086602, 0x40046602, 0x401C5820
_DENIED_IOCTLS = (_TIOCSTI, _TIOCLINUX, _FS_IOC_SETFLAGS, _FS_IOC32_SETFLAGS, _FS_IOC_FSSETXATTR)


@functools.lru_cache(maxsize=None)
def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi() -> int:
    """Landlock ABI version of the running kernel, 0 when absent or disabled."""
    try:
        abi = _libc().syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                              ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    except OSError:
        return 0
    return max(int(abi), 0)


@dataclass
class Layers:
    """What the server managed to set up, and why not where it did not.

    `status` maps a layer name to True (active) or a string saying why it is not.
    """

    status: dict = field(default_factory=dict)
    landlock_abi: int = 0
    seccomp_bpf: bytes = b""
    """The lane's seccomp filter, compiled once to BPF in the server (libseccomp takes ~0.5 ms
    to generate it); loaded once per lane template."""
    seccomp_worker_bpf: bytes = b""
    """Each worker's own filter on top of the lane's: WORKER_ONLY_DENIED."""
    scratch_root: str = ""

    def active(self, name: str) -> bool:
        return self.status.get(name) is True


def setup_server(scratch_root: str, scratch_mb: int, n_workers: int,
                 disable: tuple = ()) -> Layers:
    """Run once in the server process: shared namespaces, scratch tmpfs, seccomp filter."""
    layers = Layers(scratch_root=scratch_root)
    status = layers.status
    status["process"] = True  # a separate, size-capped process per batch, SIGKILLed on timeout
    status["rlimits"] = True
    root = os.geteuid() == 0
    libc = _libc()
    _setup_kernel_layers(layers, scratch_root, scratch_mb, n_workers, root, libc, disable)
    for name in disable:
        status[name] = "disabled by VerifierConfig.disable_layers"
    return layers


def _setup_kernel_layers(layers, scratch_root, scratch_mb, n_workers, root, libc, disable):
    status = layers.status

    if root:
        status["setuid"] = True
    else:
        status["setuid"] = "not root: workers keep the caller's uid (RLIMIT_NPROC then counts " \
                           "all of the user's processes, so fork is left to seccomp)"

    if "namespaces" in disable:
        status["namespaces"] = "disabled"
    elif not root:
        status["namespaces"] = "not root: no private network/IPC/mount namespaces"
    elif libc.unshare(_CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWNS) != 0:
        status["namespaces"] = f"unshare failed: {os.strerror(ctypes.get_errno())}"
    elif libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        status["namespaces"] = f"making / private failed: {os.strerror(ctypes.get_errno())}"
    else:
        status["namespaces"] = True

    status["scratch_tmpfs"] = "no private mount namespace: scratch is a plain directory " \
                              "(file size capped by RLIMIT_FSIZE, total not capped)"
    if status["namespaces"] is True:
        # nr_inodes bounds how many files and directories checks can leave for cleanup
        opts = (f"size={scratch_mb * max(n_workers, 1)}m,"
                f"nr_inodes={4096 * max(n_workers, 1)},mode=0711").encode()
        if libc.mount(b"tmpfs", scratch_root.encode(), b"tmpfs",
                      _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, opts) == 0:
            status["scratch_tmpfs"] = True
        else:
            status["scratch_tmpfs"] = f"tmpfs mount failed: {os.strerror(ctypes.get_errno())}"

    layers.landlock_abi = landlock_abi()
    if layers.landlock_abi >= 1:
        missing = []
        if layers.landlock_abi < 4:
            missing.append("TCP (needs ABI 4)")
        if layers.landlock_abi < 6:
            missing.append("signal scoping (needs ABI 6)")
        status["landlock"] = True
        if missing:
            status["landlock_partial"] = f"ABI {layers.landlock_abi}: no " + ", ".join(missing)
    else:
        status["landlock"] = "kernel has no Landlock (or it is disabled): file access is " \
                             "limited by uid and permissions only"

    if "seccomp" in disable:
        return
    try:
        lane = tuple(n for n in DENIED_SYSCALLS if n not in WORKER_ONLY_DENIED)
        layers.seccomp_bpf = compile_seccomp_filter(build_seccomp_filter(lane, prlimit=False))
        layers.seccomp_worker_bpf = compile_seccomp_filter(
            build_seccomp_filter(WORKER_ONLY_DENIED, ioctls=False))
        status["seccomp"] = True
    except Exception as e:  # ImportError (no pyseccomp/libseccomp) or an OSError from it
        status["seccomp"] = f"unavailable ({type(e).__name__}: {e}): sockets, exec and fork " \
                            "are then stopped only by namespaces, rlimits and the import policy"


def compile_seccomp_filter(flt) -> bytes:
    """A filter of build_seccomp_filter() as raw BPF instructions."""
    import tempfile

    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def load_seccomp(bpf: bytes) -> None:
    """Install a compiled filter in this process (irreversibly; children inherit it)."""
    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    program = _SockFprog(len(bpf) // 8, bpf)  # struct sock_filter is 8 bytes
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP failed")


def build_seccomp_filter(denied: tuple = DENIED_SYSCALLS, prlimit: bool = True,
                         ioctls: bool = True):
    """A filter denying `denied` (EPERM); `prlimit`: also prlimit64 calls that set a limit;
    `ioctls`: also the terminal ioctls that inject input and those that set inode flags."""
    import pyseccomp as sc

    flt = sc.SyscallFilter(sc.ALLOW)
    for name in denied:
        syscall = name
        if name in _UNIFIED_NUMBERS and sc.resolve_syscall(sc.Arch.NATIVE, name) < 0:
            syscall = _UNIFIED_NUMBERS[name]
        try:
            flt.add_rule(sc.ERRNO(errno.EPERM), syscall)
        except (OSError, ValueError):
            continue  # not a syscall on this architecture
    if prlimit:
        flt.add_rule(sc.ERRNO(errno.EPERM), "prlimit64", sc.Arg(2, sc.NE, 0))  # set, not get
    for request in _DENIED_IOCTLS if ioctls else ():
        # The kernel reads the request as 32 bits: compare only those, or a request with
        # high bits set would pass the filter and still reach the ioctl.
        flt.add_rule(sc.ERRNO(errno.EPERM), "ioctl",
                     sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    return flt


def set_lane_rlimits(memory_bytes: int, file_bytes: int) -> None:
    """The limits every worker of a lane shares (set once, in its template)."""
    _lower([(resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_FSIZE, file_bytes),
            (resource.RLIMIT_NOFILE, 32), (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_MEMLOCK, 0), (resource.RLIMIT_MSGQUEUE, 0)])


def set_worker_rlimits(cpu_seconds: int, one_process: bool) -> None:
    """A worker's own limits: its CPU budget, and (when it runs as the lane's uid, alone under
    it) no second process."""
    limits = [(resource.RLIMIT_CPU, cpu_seconds)]
    if one_process:
        limits.append((resource.RLIMIT_NPROC, 1))
    _lower(limits)


def _lower(limits: list) -> None:
    """Lower soft and hard limits together so the untrusted code cannot raise them back."""
    for which, value in limits:
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))


def drop_privileges(uid: int):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getegid() != uid:
        raise OSError("setuid did not take effect")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def apply_landlock(abi: int, writable_dir: str):
    """Deny every file access except inside `writable_dir`; deny TCP; scope signals."""
    libc = _libc()
    fs = _FS_RIGHTS[min(abi, 5)]
    attr = _RulesetAttr(handled_access_fs=fs)
    size = 8
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL
        size = 24
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr),
                           ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        dir_fd = os.open(writable_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            rule = _PathBeneathAttr(allowed_access=fs & ~(_FS_EXECUTE | _FS_REFER),
                                    parent_fd=dir_fd)
            if libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset),
                            ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule),
                            ctypes.c_uint32(0)) != 0:
                raise OSError(ctypes.get_errno(), "landlock_add_rule failed")
        finally:
            os.close(dir_fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset),
                        ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


def apply_landlock_scope(abi: int) -> None:
    """A nested Landlock domain of this process alone, handling only scopes (ABI >= 6): no
    signals to, and no abstract unix sockets of, anything outside it (its lane template and
    the lane's other workers included). A no-op on older ABIs, where seccomp's kill denial
    stands alone."""
    if abi < 6:
        return
    libc = _libc()
    attr = _RulesetAttr(scoped=_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL)
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr),
                           ctypes.c_size_t(24), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset (scope) failed")
    try:
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset),
                        ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self (scope) failed")
    finally:
        os.close(ruleset)


def unmount_scratch(scratch_root: str) -> None:
    """Detach the scratch tmpfs (its files go with it), so that its mount point can be removed."""
    _libc().umount2(scratch_root.encode(), 2)  # MNT_DETACH


def die_with_parent(parent_pid: int):
    """SIGKILL this worker if the server dies (set after setuid, which clears it)."""
    if _libc().prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_PDEATHSIG failed")
    if os.getppid() != parent_pid:
        os._exit(0)  # the server is already gone


def not_dumpable():
    """No ptrace or /proc/<pid>/mem access to this process from its own uid."""
    _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
