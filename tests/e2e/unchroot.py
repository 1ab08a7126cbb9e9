"""usage: unshare -m python3 unchroot.py NEWROOT CMD [ARGS...]

Runs CMD with NEWROOT as the root of its own mount namespace instead of a
chroot into it. The test host runs the suite chrooted into NEWROOT
(tests/testhost/init.sh), and the kernel refuses user namespaces to a
chrooted process; passt (user-mode networking) sandboxes itself in one. In
a private mount namespace (unshare -m) this leaves the chroot, moves the
NEWROOT mount over "/" and enters it, as switch_root does: NEWROOT is then
the namespace's root, not a chroot."""
import ctypes
import os
import sys

MS_MOVE = 8192
libc = ctypes.CDLL(None, use_errno=True)
newroot, argv = sys.argv[1], sys.argv[2:]
cwd = os.getcwd()
os.makedirs("/tmp/.uvm-unchroot", exist_ok=True)
fd = os.open("/", os.O_RDONLY)
os.chroot("/tmp/.uvm-unchroot")  # our cwd is now outside the root: ".." climbs out
os.fchdir(fd)
for _ in range(64):
    os.chdir("..")
os.chroot(".")
os.chdir(newroot)
if libc.mount(newroot.encode(), b"/", None, MS_MOVE, None) != 0:
    err = ctypes.get_errno()
    sys.exit("unchroot: mount --move %s /: %s" % (newroot, os.strerror(err)))
os.chroot(".")
os.chdir(cwd)
os.execvp(argv[0], argv)
