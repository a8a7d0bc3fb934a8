# zonevm: a thin wrapper over Meson + ninja.
#
#   make            build everything (build/)
#   make demo       install what is missing, build, boot a demo guest
#   make check      install what is missing, build, run every test
#   make kit        build the guest kit (kernel, modules, busybox initrd)
#   make fuzz-long  run every fuzz target for a long time
#   make bench      run the benchmarks (figures, not assertions)

BUILD ?= build
SAN   ?= build-san
KIT   ?= $(BUILD)/kit

.PHONY: all build san deps demo check unit kit integration fuzz-smoke fuzz-long bench format clean

all: build

build:
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD)
	ninja -C $(BUILD)

# clang + AddressSanitizer + UndefinedBehaviorSanitizer, with fuzz targets.
san:
	@[ -f $(SAN)/build.ninja ] || CC=clang meson setup $(SAN) -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(SAN)

deps:
	tools/install-deps

kit:
	tools/guest-kit $(KIT)

demo: deps build kit
	tools/demo $(KIT)

check: deps
	tools/check

unit: build san
	meson test -C $(BUILD) --print-errorlogs
	meson test -C $(SAN) --print-errorlogs

integration: build kit
	tests/integration/run

fuzz-smoke: san
	tests/fuzz/run $(SAN) 20

fuzz-long: san
	tests/fuzz/run $(SAN) 1200

bench: build kit
	bench/run

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(SAN)
