# otpc: the commands the README shows. Everything builds with CMake; this
# file installs what is missing, then drives the builds and the checks.
#
#   make run      build and run the main job: an otpc node running the
#                 example application hot_counter, upgraded twice while it
#                 runs, then stopped with SIGTERM (examples/node_demo.sh)
#   make test     install what is missing, build, run every test: unit,
#                 interop against real Erlang, the ASan+UBSan suite, the
#                 runtime under TSan, fuzzers
#   make bench    benchmarks beside Erlang; writes docs/benchmarks.md
#   make install  install the library, headers, pkg-config and CMake files
#   make fuzz     run each fuzzer longer (FUZZ_SECONDS, default 300)

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 300
FUZZ_QUICK_SECONDS ?= 20

# Debian packages each part needs: a compiler and CMake, zlib, OpenSSL
# (libcrypto for the distribution handshake's MD5, libssl for TLS
# distribution), Erlang (and Elixir; erlang-nox brings erlang-ssl) for the
# interop tests and benchmarks, the openssl command that makes the TLS
# tests' certificates, clang with its runtime for libFuzzer.
PKGS_BUILD = gcc make cmake pkg-config zlib1g-dev libssl-dev
PKGS_TEST  = $(PKGS_BUILD) erlang-nox elixir clang libclang-rt-14-dev openssl
PKGS_BENCH = $(PKGS_BUILD) erlang-nox golang-go

SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build run test unit asan tsan fuzz-quick fuzz bench install \
        deps-build deps-test deps-bench format clean

all: build

define install_missing
	@missing=$$(for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' \
	    || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi
endef

deps-build:
	$(call install_missing,$(PKGS_BUILD))
deps-test:
	$(call install_missing,$(PKGS_TEST))
deps-bench:
	$(call install_missing,$(PKGS_BENCH))

build: deps-build
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	examples/node_demo.sh $(BUILD)

test: deps-test unit asan tsan fuzz-quick
	@echo "make test: all suites passed"

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan: deps-test
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	  -DOTPC_SANITIZE="address;undefined" -DOTPC_BENCH=OFF >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

# The runtime's tests under ThreadSanitizer (the term layer has no threads).
tsan: deps-test
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	  -DOTPC_SANITIZE=thread -DOTPC_BENCH=OFF >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target otpc_test_rt otpc_test_otp otpc_test_dist
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -R '^(rt|otp|dist)$$'

$(FUZZ_BUILD)/Makefile: deps-test
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	  -DOTPC_FUZZ=ON -DOTPC_TESTS=OFF -DOTPC_BENCH=OFF >/dev/null

fuzz-quick: $(FUZZ_BUILD)/Makefile
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_QUICK_SECONDS)

fuzz: $(FUZZ_BUILD)/Makefile
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: deps-bench
	cmake -S . -B $(BUILD)-bench -DCMAKE_BUILD_TYPE=Release -DOTPC_TESTS=OFF >/dev/null
	cmake --build $(BUILD)-bench -j $(JOBS)
	bench/run.sh $(BUILD)-bench

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD)-bench $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
