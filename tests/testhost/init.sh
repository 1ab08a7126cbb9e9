#!/bin/sh
# /init of the test host (busybox sh). Loads modules, mounts the host's root
# (9p, read-only) and the exports, runs the command in a chroot of the host
# root, leaves its exit status in the results export and powers off.
# ttyS0: kernel and this script's messages; ttyS1/ttyS2: the command's
# stdout/stderr, relayed by tests/testhost/run.
export PATH=/bin
log() { echo "testhost-init: $*"; }
halt_now() { sync; reboot -f; sleep 5; echo o >/proc/sysrq-trigger; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
	insmod "/lib/modules/$m" || log "insmod $m failed"
done </lib/modules/order

P9='trans=virtio,version=9p2000.L,msize=512000'
R=/newroot
mkdir -p /results $R
mount -t 9p -o "$P9,cache=none" results /results || { log "cannot mount results"; halt_now; }
# The host root does not change under us while we run; caching it is what
# makes python and the compiler start in reasonable time.
mount -t 9p -o "$P9,ro,cache=loose" hostroot $R || { log "cannot mount hostroot"; halt_now; }
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount --bind /dev $R/dev
mount --bind /dev/pts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
for d in /tmp /var/tmp /run; do
	mount -t tmpfs -o mode=1777 tmpfs "$R$d"
done
# After the tmpfs mounts, so a writable directory under /tmp stays visible.
. /results/env
if [ -n "$TESTHOST_RW" ]; then
	mkdir -p "$R$TESTHOST_RW" 2>/dev/null
	mount -t 9p -o "$P9,cache=none" rw "$R$TESTHOST_RW" || { log "cannot mount rw export at $TESTHOST_RW"; halt_now; }
fi
mkdir -p $R/tmp/.testhost
cp /results/cmd $R/tmp/.testhost/cmd
stty -F /dev/ttyS1 raw -echo
stty -F /dev/ttyS2 raw -echo
[ -e /dev/kvm ] || log "no /dev/kvm (nested SVM unavailable)"
# One idle VM held open for the whole run, so VMs coming and going do not
# patch this kernel's text (tests/testhost/kvm-keeper, docs/testing.md).
if [ -e /dev/kvm ] && [ -n "$TESTHOST_KEEPER" ]; then
	chroot $R /usr/bin/python3 "$TESTHOST_KEEPER" </dev/null >/dev/null 2>/dev/ttyS0 &
fi
echo up >/results/up
# A heartbeat for tests/testhost/run: when this test host stops scheduling
# (seen: both vCPUs wedged, sometimes without any lockup report), the file
# stops changing and the run is ended instead of waiting out its timeout.
( while :; do
	cat /proc/uptime >/results/heartbeat.tmp && mv /results/heartbeat.tmp /results/heartbeat
	sleep 5
done ) &
echo $! >$R/tmp/.testhost/heartbeat.pid  # the selftest stops it
chroot $R /bin/sh /tmp/.testhost/cmd </dev/null >/dev/ttyS1 2>/dev/ttyS2
echo $? >/results/rc.tmp && mv /results/rc.tmp /results/rc
halt_now
