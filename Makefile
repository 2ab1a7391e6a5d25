# SwiftGateway: the Apache module (apxs) and the Swift runtime (SwiftPM).
#   make            build the module, the example sites and the test fixture program (release)
#   make test       format check, unit tests, docs checks and integration tests against a real Apache
#   make run        serve the example site on http://127.0.0.1:8080/
#   make install    install the module and its Debian-style .load/.conf
#   make install-test  make install, a2enmod, apache2ctl configtest on this machine's Apache, undone after
#   make fuzz       run each fuzz target for FUZZ_SECONDS (docs/testing.md); not part of make test
#   make test-asan  the integration tests against the module built with ASan and UBSan (docs/testing.md)
#   make bench      compare the gateway with static files, mod_proxy_fcgi and mod_wsgi (bench/README.md)

APXS        ?= apxs
SWIFT       ?= swift
PYTHON      ?= python3
CONFIG      ?= release
# Release programs link the Swift runtime statically (no PLT or TLS look-up on every retain and
# release) and keep exclusivity to the compiler's static checks: together a quarter less worker
# CPU per hello request. `swift test` (debug) keeps the run-time exclusivity checks.
SWIFT_RELEASE_FLAGS ?= --static-swift-stdlib -Xswiftc -enforce-exclusivity=unchecked
SWIFT_BUILD_FLAGS   ?= $(if $(filter release,$(CONFIG)),$(SWIFT_RELEASE_FLAGS))

MODULE       = CModule/.libs/mod_swift_gateway.so
MODULE_SRC   = $(wildcard CModule/*.c) $(wildcard CModule/*.h) $(SCOREBOARD_H)
# The scoreboard's layout, defined once for the module and the Swift runtime.
SCOREBOARD_H = Sources/CSwiftGatewayLinux/include/sg_scoreboard.h
EXAMPLE_BIN  = .build/$(CONFIG)/ExampleSite
# The program the integration tests and make bench run (Tests/Fixtures/GatewayFixture).
FIXTURE_BIN  = .build/$(CONFIG)/GatewayFixture
# The Hummingbird example (Examples/HummingbirdSite): test_hummingbird.py and make bench run it.
HUMMINGBIRD_BIN = .build/$(CONFIG)/HummingbirdSite
SWIFT_SRC    = Package.swift $(shell find Sources Examples Tests/Fixtures -name '*.swift' -o -name '*.c' -o -name '*.h' 2>/dev/null)
# make bench's own package (bench/Package.swift), built apart from SwiftGateway's.
BENCH_SCRATCH = .build-bench
NIO_FLOOR_BIN = $(BENCH_SCRATCH)/$(CONFIG)/NIOFloorWorker
BENCH_SWIFT_SRC = bench/Package.swift $(shell find bench/Sources -name '*.swift' -o -name '*.c' -o -name '*.h' 2>/dev/null)
ARTIFACTS    = SG_MODULE=$(CURDIR)/$(MODULE) SG_FIXTURE=$(CURDIR)/$(FIXTURE_BIN) SG_HUMMINGBIRD=$(CURDIR)/$(HUMMINGBIRD_BIN)

.PHONY: all module swift nio-floor fuzz fuzz-build test-asan asan-module unit-test-sanitizers test format-check format unit-test docs-test integration-test run install install-test clean dependencies bench callgrind

all: module swift

module: $(MODULE)

$(MODULE): $(MODULE_SRC)
	cd CModule && $(APXS) -c -Wc,-Wall -Wc,-Wextra -Wc,-Werror -I$(CURDIR)/$(dir $(SCOREBOARD_H)) \
		-o mod_swift_gateway.la $(notdir $(filter %.c,$(MODULE_SRC)))

swift: $(EXAMPLE_BIN) $(FIXTURE_BIN) $(HUMMINGBIRD_BIN)

$(EXAMPLE_BIN): $(SWIFT_SRC) Makefile
	$(SWIFT) build -c $(CONFIG) --product ExampleSite $(SWIFT_BUILD_FLAGS)

$(FIXTURE_BIN): $(SWIFT_SRC) Makefile
	$(SWIFT) build -c $(CONFIG) --product GatewayFixture $(SWIFT_BUILD_FLAGS)

$(HUMMINGBIRD_BIN): $(SWIFT_SRC) Makefile
	$(SWIFT) build -c $(CONFIG) --product HummingbirdSite $(SWIFT_BUILD_FLAGS)

# make bench's gateway-nio-floor: a SwiftNIO worker with no request path (bench/README.md)
nio-floor: $(NIO_FLOOR_BIN)

$(NIO_FLOOR_BIN): $(BENCH_SWIFT_SRC) Makefile
	$(SWIFT) build --package-path bench --scratch-path $(CURDIR)/$(BENCH_SCRATCH) -c $(CONFIG) \
		--product NIOFloorWorker $(SWIFT_BUILD_FLAGS)

# ---- make fuzz: libFuzzer targets (docs/testing.md) -------------------------------------------
# The module's reading of a worker's bytes (CModule/sg_records.c, linked as it is) built with
# Debian's clang; the runtime's decoders (Fuzz/Package.swift) with Swift's -sanitize=fuzzer. Each
# runs FUZZ_SECONDS from its seed corpus (Fuzz/corpus/<target>) into a working copy of it.
FUZZ_CC        ?= /usr/bin/clang
FUZZ_SECONDS   ?= 30
FUZZ_RUNS      ?= -1
FUZZ_SCRATCH    = .build-fuzz
FUZZ_SANITIZE   = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_C_BIN      = $(FUZZ_SCRATCH)/c/fuzz_worker_stream
FUZZ_SWIFT_SRC  = Fuzz/Package.swift $(shell find Fuzz/Sources -name '*.swift' 2>/dev/null)
FUZZ_SWIFT_BIN  = $(FUZZ_SCRATCH)/release/FuzzRecordDecoder $(FUZZ_SCRATCH)/release/FuzzNameValuePairs \
                  $(FUZZ_SCRATCH)/release/FuzzCGIRequest

fuzz-build: $(FUZZ_C_BIN) $(FUZZ_SCRATCH)/release/FuzzCGIRequest

$(FUZZ_C_BIN): Fuzz/c/fuzz_worker_stream.c CModule/sg_records.c CModule/sg_records.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 $(FUZZ_SANITIZE) -Wall -Wextra -Werror -DLINUX -D_REENTRANT -D_GNU_SOURCE \
		-ICModule -I$$($(APXS) -q INCLUDEDIR) $$(apr-1-config --includes) \
		Fuzz/c/fuzz_worker_stream.c CModule/sg_records.c -o $@

# -enable-testing: the targets reach the runtime's internal decoders by @testable import
$(FUZZ_SCRATCH)/release/FuzzCGIRequest: $(FUZZ_SWIFT_SRC) $(SWIFT_SRC)
	$(SWIFT) build --package-path Fuzz --scratch-path $(CURDIR)/$(FUZZ_SCRATCH) -c release \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xswiftc -use-ld=lld

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) ./Fuzz/run.sh $(FUZZ_SCRATCH) \
		worker_stream=$(FUZZ_C_BIN) \
		record_decoder=$(FUZZ_SCRATCH)/release/FuzzRecordDecoder \
		name_value_pairs=$(FUZZ_SCRATCH)/release/FuzzNameValuePairs \
		cgi_request=$(FUZZ_SCRATCH)/release/FuzzCGIRequest

# ---- make test-asan: the module with AddressSanitizer and UndefinedBehaviorSanitizer ------------
# Built from a copy of CModule/ in its own directory, so the normal module stays as it is, and
# loaded into Debian's httpd with the ASan runtime preloaded; a sanitizer report written during a
# test fails it (Tests/Integration/conftest.py). Leak checks are off: httpd's children exit with
# their pools allocated, by design.
comma        := ,
ASAN_SCRATCH  = .build-asan
ASAN_MODULE   = $(ASAN_SCRATCH)/module/.libs/mod_swift_gateway.so
ASAN_FLAGS    = -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_REPORTS  = $(CURDIR)/$(ASAN_SCRATCH)/reports
# httpd installs its own SIGSEGV/SIGABRT handlers: ASan's stay, so a crash is a report too
ASAN_OPTIONS_HTTPD = detect_leaks=0:allow_user_segv_handler=0:handle_abort=1
ASAN_RUNTIME  = $(shell $$($(APXS) -q CC) -print-file-name=libasan.so)
ASAN_TESTS   ?= Tests/Integration

asan-module: $(ASAN_MODULE)

$(ASAN_MODULE): $(MODULE_SRC)
	rm -rf $(ASAN_SCRATCH)/module && mkdir -p $(ASAN_SCRATCH)/module
	cp $(MODULE_SRC) $(ASAN_SCRATCH)/module/
	cd $(ASAN_SCRATCH)/module && $(APXS) -c -Wc,-Wall -Wc,-Wextra -Wc,-Werror \
		$(addprefix -Wc$(comma),$(ASAN_FLAGS)) -Wl,-fsanitize=address,undefined \
		-o mod_swift_gateway.la $(notdir $(filter %.c,$(MODULE_SRC)))

test-asan: dependencies
	$(MAKE) asan-module swift
	rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS) && chmod 1777 $(ASAN_REPORTS)
	SG_MODULE=$(CURDIR)/$(ASAN_MODULE) SG_FIXTURE=$(CURDIR)/$(FIXTURE_BIN) SG_EXAMPLE=$(CURDIR)/$(EXAMPLE_BIN) \
		SG_HTTPD_PRELOAD=$(ASAN_RUNTIME) SG_SANITIZER_LOG_DIR=$(ASAN_REPORTS) \
		ASAN_OPTIONS=$(ASAN_OPTIONS_HTTPD) UBSAN_OPTIONS=print_stacktrace=1 \
		$(PYTHON) -m pytest -q $(ASAN_TESTS)
	@if [ -n "$$(ls -A $(ASAN_REPORTS))" ]; then echo "sanitizer reports in $(ASAN_REPORTS)"; exit 1; fi

# The Swift unit tests under the sanitizers the toolchain has on Linux (docs/testing.md), leak
# checks on. Tests/sanitizers/ names what the sanitizers must not report, and why: XCTest's own
# objects, synchronisation TSan cannot see. Any other report fails the pass (ASan and LSan exit
# non-zero, TSan with exit code 66 once the tests are done).
SANITIZER_SUPPRESSIONS = $(CURDIR)/Tests/sanitizers
unit-test-sanitizers:
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(SANITIZER_SUPPRESSIONS)/lsan.supp \
		$(SWIFT) test --scratch-path $(CURDIR)/.build-sanitize-address --sanitize=address
	TSAN_OPTIONS=suppressions=$(SANITIZER_SUPPRESSIONS)/tsan.supp \
		$(SWIFT) test --scratch-path $(CURDIR)/.build-sanitize-thread --sanitize=thread

# the code is formatted as .clang-format and .swift-format say (fix: make format)
C_FORMATTED     = $(wildcard CModule/*.c CModule/*.h Fuzz/c/*.c Sources/CSwiftGatewayLinux/*.c Sources/CSwiftGatewayLinux/include/*.h)
SWIFT_FORMATTED = Package.swift Sources Tests/SwiftGatewayTests Tests/SwiftGatewayHummingbirdTests Tests/Fixtures Examples \
                  bench/Package.swift bench/Sources Fuzz/Package.swift Fuzz/Sources

format-check:
	clang-format --dry-run --Werror $(C_FORMATTED)
	$(SWIFT) format lint --strict --recursive $(SWIFT_FORMATTED)

format:
	clang-format -i $(C_FORMATTED)
	$(SWIFT) format format --in-place --recursive $(SWIFT_FORMATTED)

# the docs describe the code: every log message number documented, every documented one used
docs-test:
	$(PYTHON) -m pytest -q Tests/Docs

unit-test:
	$(SWIFT) test

integration-test: all
	$(ARTIFACTS) SG_EXAMPLE=$(CURDIR)/$(EXAMPLE_BIN) $(PYTHON) -m pytest -q -rP Tests/Integration

test: dependencies
	$(MAKE) format-check unit-test docs-test integration-test install-test

dependencies:
	./scripts/install-dependencies.sh

run: dependencies
	$(MAKE) all
	./scripts/run-example-site.sh $(CURDIR)/$(MODULE) $(CURDIR)/$(EXAMPLE_BIN)

bench: dependencies
	$(MAKE) all nio-floor
	$(ARTIFACTS) SG_NIO_FLOOR=$(CURDIR)/$(NIO_FLOOR_BIN) $(PYTHON) bench/run_bench.py $(BENCH_ARGS)

callgrind: dependencies
	$(MAKE) all
	$(ARTIFACTS) $(PYTHON) bench/callgrind_apache.py $(CALLGRIND_ARGS)

# swift_gateway.conf is the admin's once installed: a later install leaves an edited one alone.
install: module
	$(APXS) -i -n swift_gateway $(MODULE)
	@available=$$($(APXS) -q SYSCONFDIR)/mods-available; \
	install -m 644 conf/swift_gateway.load $$available/; \
	if [ -e $$available/swift_gateway.conf ] && ! cmp -s conf/swift_gateway.conf $$available/swift_gateway.conf; then \
		echo "kept $$available/swift_gateway.conf, which was changed; the new starting point is conf/swift_gateway.conf"; \
	else \
		install -m 644 conf/swift_gateway.conf $$available/; \
	fi

# README's installation on the system's Apache (as root; skipped otherwise), then undone: it never
# starts or restarts that Apache and leaves its files as they were (scripts/check-install.sh)
install-test: module $(EXAMPLE_BIN)
	./scripts/check-install.sh $(CURDIR)/$(EXAMPLE_BIN)

clean:
	rm -rf CModule/.libs CModule/*.o CModule/*.lo CModule/*.la CModule/*.slo
	$(SWIFT) package clean
	rm -rf $(BENCH_SCRATCH) $(FUZZ_SCRATCH) $(ASAN_SCRATCH) .build-sanitize-address .build-sanitize-thread
