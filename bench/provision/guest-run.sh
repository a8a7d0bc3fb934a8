#!/bin/sh
# guest-run.sh: /zonevm-run.sh of the provisioning benchmark's guest image,
# run by the guest kit's /init (zonevm.scriptdisk=vda) with cwd /mnt, the
# image's file system.  Its first line is the one bench/provision times: the
# guest is up and runs a program from its own disk.
echo "zprov: userspace from the image"
exit 0
