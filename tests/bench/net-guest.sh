# Guest side of tests/bench/net.py, carried in the benchmark initrd as
# /bench/net.sh (busybox sh): sh /bench/net.sh HOST CIDR MAC SECS OMIT RR_PORT
# Finds the NIC by its MAC, gives it CIDR if it has no IPv4 address yet (under
# uvm-shim the agent already did; under QEMU nothing did), then runs iperf3
# guest -> host and host -> guest (-R), SECS seconds each after OMIT seconds
# left out, and the round-trip echo (busybox nc running cat on the
# connection: each byte the host sends comes back).
host=$1 cidr=$2 mac=$3 secs=$4 omit=$5 rrport=$6
dev=
for i in /sys/class/net/*; do
	[ "$(cat "$i/address")" = "$mac" ] && dev=${i##*/}
done
[ -n "$dev" ] || { echo "NETBENCH-ERROR no NIC with MAC $mac"; exit 1; }
if ! ip -4 addr show dev "$dev" | grep -q inet; then
	ip addr add "$cidr" dev "$dev" && ip link set "$dev" up || exit 1
fi
echo "NETBENCH-NIC $dev mtu $(cat /sys/class/net/$dev/mtu)"
n=0
until ping -c 1 -W 2 "$host" >/dev/null 2>&1; do
	n=$((n + 1))
	[ $n -lt 30 ] || { echo "NETBENCH-ERROR $host does not answer ping"; exit 1; }
done
echo NETBENCH-G2H
iperf3 -c "$host" -t "$secs" -O "$omit" -f m
echo NETBENCH-H2G
iperf3 -c "$host" -t "$secs" -O "$omit" -f m -R
echo NETBENCH-RR
nc "$host" "$rrport" -e cat
echo "NETBENCH-END $?"
