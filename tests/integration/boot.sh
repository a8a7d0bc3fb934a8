#!/bin/sh
# boot.sh - `zonevm run` boots the unmodified Debian cloud kernel of the
# guest kit with 1, 2 and 3 vCPUs and 3.5 GiB, ends with the right status on
# power-off, reboot, triple fault and signals, and refuses bad input with a
# clear message before any vCPU runs.  Needs real KVM (the emulated host).
. "${TESTS:-/tests}/lib.sh"

K=$KIT/vmlinuz
I=$KIT/initrd.img
C="console=ttyS0 panic=-1 quiet"

# ---- real Linux guests ------------------------------------------------------
for n in 1 2 3; do
	expect_run "Debian kernel boots with $n vCPU(s) and sees them" 0 \
		"zonevm-guest: up cpus=$n " \
		--kernel "$K" --initrd "$I" --cmdline "$C" --cpus "$n" --mem 256M
done

log="$WORK/big.log"
zrun "$log" --kernel "$K" --initrd "$I" --cmdline "$C" --cpus 2 --mem 3.5G
kb=$(sed -n 's/.*zonevm-guest: up cpus=[0-9]* mem_kb=\([0-9]*\).*/\1/p' "$log")
if [ "$rc" -eq 0 ] && [ -n "$kb" ] && [ "$kb" -gt 3300000 ]; then
	tap_ok "a 3.5 GiB guest sees memory above the 4 GiB hole (MemTotal ${kb} kB)"
else
	tap_not_ok "a 3.5 GiB guest sees all its memory (exit $rc, MemTotal '${kb}' kB)"
	tap_diag "$log"
fi

script=$(guest_script 'ls /sys/firmware/acpi/tables; cat /sys/bus/pci/devices/0000:00:00.0/class; grep -c "^processor" /proc/cpuinfo')
log="$WORK/acpi.log"
zrun "$log" --kernel "$K" --initrd "$I" --cmdline "$C zonevm.script=$script" --cpus 2
if [ "$rc" -eq 0 ] && grep -q APIC "$log" && grep -q DSDT "$log" && grep -q FACP "$log" &&
	grep -q MCFG "$log" && grep -q 0x060000 "$log"; then
	tap_ok "guest finds MADT, DSDT, FADT, MCFG and the PCI host bridge"
else
	tap_not_ok "guest finds the ACPI tables and the PCI host bridge (exit $rc)"
	tap_diag "$log" 40
fi

expect_run "guest reboot ends the VMM with status 3" 3 "zonevm-guest: up" \
	--kernel "$K" --initrd "$I" --cmdline "$C zonevm.action=reboot"

log="$WORK/restart.log"
zonevm run --kernel "$K" --initrd "$I" --cmdline "$C zonevm.action=reboot" \
	--on-reboot restart </dev/null >"$log" 2>&1 &
pid=$!
i=0
while [ "$i" -lt 300 ] && [ "$(grep -c 'zonevm-guest: up' "$log")" -lt 2 ]; do
	sleep 1
	i=$((i + 1))
done
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
if [ "$(grep -c 'zonevm-guest: up' "$log")" -ge 2 ] && [ "$rc" -eq 5 ]; then
	tap_ok "--on-reboot restart boots the guest again; SIGTERM ends it with status 5"
else
	tap_not_ok "--on-reboot restart (exit $rc, $(grep -c 'zonevm-guest: up' "$log") boots)"
	tap_diag "$log"
fi

# Console input: bytes on stdin reach the guest's shell through the UART's
# receive interrupt, and the guest's answer comes back on stdout.
log="$WORK/stdin.log"
mkfifo "$WORK/stdin"
timeout 300 zonevm run --kernel "$K" --initrd "$I" --cmdline "$C zonevm.action=shell" \
	<"$WORK/stdin" >"$log" 2>&1 &
pid=$!
exec 3>"$WORK/stdin"
i=0
while [ "$i" -lt 240 ] && ! grep -q "zonevm-guest: shell" "$log"; do
	sleep 1
	i=$((i + 1))
done
sleep 2
# shellcheck disable=SC2016
printf 'echo typed-$((6 * 7))\nexit\n' >&3
wait "$pid"
rc=$?
exec 3>&-
if [ "$rc" -eq 0 ] && grep -q "typed-42" "$log"; then
	tap_ok "console input from stdin reaches the guest shell (UART receive interrupts)"
else
	tap_not_ok "console input from stdin reaches the guest shell (exit $rc)"
	tap_diag "$log"
fi

# ---- tiny synthetic kernels: exit paths --------------------------------------
for k in poweroff reboot crash spin; do
	"$TESTS/mkbzimage" "$WORK/tiny-$k" "$k"
done
expect_run "power-off through the ACPI sleep register gives status 0" 0 "tiny: hello" \
	--kernel "$WORK/tiny-poweroff"
expect_run "reset through the ACPI reset register gives status 3" 3 "tiny: hello" \
	--kernel "$WORK/tiny-reboot"
log="$WORK/crash.log"
zrun "$log" --kernel "$WORK/tiny-crash"
if [ "$rc" -eq 4 ] && grep -q "triple-faulted" "$log" &&
	grep -Eq "vCPU 0: rip=[0-9a-f]{16} rsp=[0-9a-f]{16} .* cr0=[0-9a-f]+ " "$log"; then
	tap_ok "a triple fault ends the VMM with status 4, says so and prints the vCPU's registers"
else
	tap_not_ok "a triple fault ends the VMM with status 4, says so and prints the registers (exit $rc)"
	tap_diag "$log"
fi

# ---- bad input: a clear error before any vCPU runs ----------------------------
expect_run "missing kernel file" 1 'cannot open kernel "/nonexistent": No such file' \
	--kernel /nonexistent
expect_run "kernel that is a directory" 1 'kernel "/tmp": it is a directory' --kernel /tmp
expect_run "kernel that is not a bzImage" 1 "not a bzImage" --kernel "$KIT/busybox"
"$TESTS/mkbzimage" "$WORK/old" poweroff 020b
expect_run "boot protocol too old" 1 "boot protocol 2.11 is too old" --kernel "$WORK/old"
expect_run "missing initrd" 1 'cannot open initrd "/nonexistent"' \
	--kernel "$K" --initrd /nonexistent
truncate -s 200M "$WORK/huge-initrd"
expect_run "initrd larger than guest memory allows" 1 "initrd \(200 MiB\) does not fit" \
	--kernel "$K" --initrd "$WORK/huge-initrd" --mem 128M
expect_run "memory too small for the kernel" 1 "too small for the kernel" \
	--kernel "$K" --mem 8M
expect_run "zero vCPUs" 2 "allows 1 to [0-9]+" --kernel "$K" --cpus 0
expect_run "more vCPUs than KVM allows" 2 "allows 1 to [0-9]+" --kernel "$K" --cpus 100000
expect_run "malformed vCPU count" 2 '"two" is not a number' --kernel "$K" --cpus two
expect_run "malformed memory size" 2 '"12Q" is not a size' --kernel "$K" --mem 12Q
expect_run "missing --kernel" 2 "--kernel is required" --mem 64M

# ---- locked memory ------------------------------------------------------------
log="$WORK/mlock.log"
chmod 666 /dev/kvm
chmod 755 "$WORK"
cp "$WORK/tiny-poweroff" "$WORK/k" && chmod 644 "$WORK/k"
# shellcheck disable=SC2016
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
	sh -c 'ulimit -l 1024; exec zonevm run --kernel "$1" --mem 64M' sh "$WORK/k" \
	</dev/null >"$log" 2>&1
rc=$?
if [ "$rc" -eq 1 ] && grep -q "cannot lock 64 MiB of guest memory: RLIMIT_MEMLOCK is 1 MiB" "$log"; then
	tap_ok "mlock failure stops the VM and names the limit"
else
	tap_not_ok "mlock failure stops the VM and names the limit (exit $rc)"
	tap_diag "$log"
fi

tap_end
