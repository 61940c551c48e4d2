#!/bin/busybox sh
# /init of the kernel-lab VM (tests/lab.rs builds the initramfs around it).
# Mounts the pseudo filesystems, loads the lab's kernel modules in dependency order,
# runs every scenario of /lab/scenarios.sh, prints LAB-DONE and powers off. Nothing
# here outlives the VM.
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
export HOME=/root NO_COLOR=1
mkdir -p /proc /sys /dev /tmp /run /root /var/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
ln -sf /run /var/run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "LAB-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r module; do
    insmod "/lab/modules/$module.ko" || echo "LAB-LOG name=init FAIL: insmod $module"
done </lab/modules.order
ip link set lo up
hostname lab
. /lab/scenarios.sh
run_all
echo "LAB-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
# Only reached if power-off is not supported: panic=-1 and -no-reboot end qemu.
echo o >/proc/sysrq-trigger
