# Shell library (sourced by tools/guest-kit and tools/kvmhost): copy a set of
# kernel modules and their dependencies into an initramfs tree, decompressed,
# with a list file giving the insmod order.
#
# Dependencies come from each module's `depends=` (modinfo -F depends) on a
# module tree that has modules.dep (depmod -b). Modules built into the kernel
# are skipped; names that do not exist are skipped with a warning.

# kit_copy_modules BASE KVER DESTDIR LISTFILE NAME...
#   BASE/lib/modules/KVER is the module tree. Each needed module is written as
#   DESTDIR/FILE.ko (decompressed) and FILE (the .ko base name) is appended to
#   LISTFILE in load order (dependencies first).
kit_copy_modules() {
	_b=$1 _k=$2 _d=$3 _l=$4
	shift 4
	mkdir -p "$_d"
	: >"$_l"
	_seen=" "
	# Closure: breadth-first over depends=, remembering each module's deps.
	_todo="$*"
	_all=""
	while [ -n "$_todo" ]; do
		set -- $_todo
		_m=$(echo "$1" | tr - _)
		shift
		_todo="$*"
		case "$_seen" in *" $_m "*) continue ;; esac
		_seen="$_seen$_m "
		_f=$(modinfo -b "$_b" -k "$_k" -F filename "$_m" 2>/dev/null) || _f=""
		case "$_f" in
		"(builtin)") continue ;;
		"")
			echo "warning: kernel module $_m not found in $_k, skipped" >&2
			continue
			;;
		esac
		_deps=$(modinfo -b "$_b" -k "$_k" -F depends "$_m" | tr , ' ' | tr - _)
		_all="$_all $_m"
		eval "_dep_$_m=\"\$_deps\" _file_$_m=\"\$_f\""
		_todo="$_todo $_deps"
	done
	# Order: emit a module once all of its (non-builtin) deps are emitted.
	_done=" "
	_left="$_all"
	while [ -n "$(echo $_left)" ]; do
		_next=""
		_progress=0
		for _m in $_left; do
			_ok=1
			eval "_deps=\$_dep_$_m"
			for _x in $_deps; do
				case "$_all " in *" $_x "*) ;; *) continue ;; esac
				case "$_done" in *" $_x "*) ;; *) _ok=0 ;; esac
			done
			if [ $_ok = 1 ]; then
				eval "_f=\$_file_$_m"
				_n=$(basename "$_f")
				_n=${_n%.xz}
				_n=${_n%.zst}
				_n=${_n%.gz}
				_n=${_n%.ko}
				case "$_f" in
				*.ko.xz) xz -dc "$_f" >"$_d/$_n.ko" ;;
				*.ko.zst) zstd -qdc "$_f" >"$_d/$_n.ko" ;;
				*.ko.gz) gzip -dc "$_f" >"$_d/$_n.ko" ;;
				*) cp "$_f" "$_d/$_n.ko" ;;
				esac || return 1
				echo "$_n" >>"$_l"
				_done="$_done$_m "
				_progress=1
			else
				_next="$_next $_m"
			fi
		done
		if [ $_progress = 0 ]; then
			echo "error: module dependency cycle among:$_next" >&2
			return 1
		fi
		_left=$_next
	done
}
