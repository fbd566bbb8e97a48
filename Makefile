# SPDX-License-Identifier: Apache-2.0
# Photon build. Run ./configure first; it writes build/config.mk.
#   make            build build/photon (incremental, -j safe)
#   make check      build with warnings as errors and run every test (last line: N passed, N failed)
#   make bench      micro-benchmarks (Google Benchmark); make bench-load runs the wrk comparison
#   make fuzz       run the fuzz targets for FUZZ_SECONDS each (default 60)
#   make check-sanitizers   make check under ASan+UBSan in a copy of the tree (build-san/)
#   make soak       SOAK_MINUTES (default 30) of mixed traffic with a reload every minute and a
#                   worker kill every 5 minutes; checks RSS stays flat and no request fails
#                   unexplained (benchmarks/soak/README.md); not part of make check
#   make run        build, start the demo backends and run the gateway on conf/photon.yaml
#   make install / uninstall   honour DESTDIR and the configured paths
#   make lib        libphoton: build/libphoton.a, build/libphoton.so and build/photon.pc
#   make install-lib / uninstall-lib   the library, its header and photon.pc
#   make clean

ifeq ($(wildcard build/config.mk),)
$(error build/config.mk is missing: run ./configure first)
endif
include build/config.mk

B := build
WERROR ?= $(if $(filter yes,$(WERROR_ALWAYS)),1,)
WFLAGS := -Wall -Wextra $(if $(WERROR),-Werror,)
# Position-independent with hidden symbols: the same objects make the static and the shared
# library (which exports only the PHOTON_API interface of include/photon/photon.h) and the binary.
PIC := -fPIC -fno-semantic-interposition -fvisibility=hidden -fvisibility-inlines-hidden
CXXFLAGS_ALL := -std=c++20 $(OPT) $(DEFS) $(SAN) $(WFLAGS) $(PIC) -Isrc -Iinclude -I$(B) $(PKG_CFLAGS) $(USER_CXXFLAGS) -MMD -MP
LDFLAGS_ALL := $(SAN) $(USER_LDFLAGS)
LIBS := $(PKG_LIBS)

LIB_SRCS := $(filter-out src/master/main.cc,$(shell find src -name '*.cc' | sort))
LIB_OBJS := $(LIB_SRCS:%.cc=$(B)/obj/%.o)
MAIN_OBJ := $(B)/obj/src/master/main.o
TEST_SRCS := $(shell find tests/unit -name '*_test.cc' 2>/dev/null | sort)
TEST_OBJS := $(TEST_SRCS:%.cc=$(B)/obj/%.o)
BENCH_SRCS := $(shell find benchmarks/micro -name '*_bench.cc' 2>/dev/null | sort)
BENCH_OBJS := $(BENCH_SRCS:%.cc=$(B)/obj/%.o)
FUZZ_SRCS := $(shell find tests/fuzz -maxdepth 1 -name '*_fuzz.cc' 2>/dev/null | sort)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.cc=$(B)/fuzz/%)
FUZZ_SECONDS ?= 60

.PHONY: all check check-sanitizers unit integration fuzz fuzz-smoke bench bench-load soak run \
	install uninstall \
	lib install-lib uninstall-lib clean FORCE

all: $(B)/photon

# Rebuild everything when the compiler flags change (e.g. make check after make).
$(B)/flags: FORCE
	@mkdir -p $(B)
	@echo '$(CXX) $(CXXFLAGS_ALL) $(LDFLAGS_ALL)' | cmp -s - $@ || echo '$(CXX) $(CXXFLAGS_ALL) $(LDFLAGS_ALL)' > $@

$(B)/obj/%.o: %.cc $(B)/flags $(B)/config.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS_ALL) $(FILE_FLAGS) $(if $(filter tests/%,$<),-Itests/unit) -c $< -o $@

# yaml-cpp 0.7's inline node code trips GCC 12's -Wdangling-pointer (a false positive inside the
# library's headers, reported upstream); only the YAML front end includes them.
$(B)/obj/src/master/config_yaml.o $(B)/obj/tests/unit/master/config_loader_test.o: FILE_FLAGS = -Wno-dangling-pointer

# The dashboard page, embedded verbatim as a C++ raw string literal.
$(B)/gen/dashboard_html.inc: src/modules/metrics/dashboard.html
	@mkdir -p $(@D)
	@! grep -q ')PHOTON_HTML"' $< || { echo "$<: must not contain )PHOTON_HTML\""; exit 1; }
	{ printf 'R"PHOTON_HTML('; cat $<; printf ')PHOTON_HTML"\n'; } > $@
$(B)/obj/src/worker/metrics_export.o: $(B)/gen/dashboard_html.inc

$(B)/libphoton.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

SOMAJOR := 0
SONAME := libphoton.so.$(SOMAJOR)
$(B)/libphoton.so: $(LIB_OBJS) contrib/libphoton.map
	$(CXX) $(LDFLAGS_ALL) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined \
		-Wl,--version-script=contrib/libphoton.map -o $@ $(LIB_OBJS) $(LIBS)

$(B)/photon.pc: contrib/photon.pc.in build/config.mk
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
		-e 's|@VERSION@|$(VERSION)|g' -e 's|@SAN@|$(strip $(SAN))|g' -e 's|@LIBS@|$(strip $(LIBS))|g' $< > $@

lib: $(B)/libphoton.a $(B)/libphoton.so $(B)/photon.pc

$(B)/photon: $(MAIN_OBJ) $(B)/libphoton.a
	$(CXX) $(LDFLAGS_ALL) -o $@ $(MAIN_OBJ) $(B)/libphoton.a $(LIBS)

$(B)/unit_tests: $(TEST_OBJS) $(B)/libphoton.a
	$(CXX) $(LDFLAGS_ALL) -o $@ $(TEST_OBJS) $(B)/libphoton.a $(LIBS) $$(pkg-config --libs gmock gtest_main)

$(B)/micro_bench: $(BENCH_OBJS) $(B)/libphoton.a
	$(CXX) $(LDFLAGS_ALL) -o $@ $(BENCH_OBJS) $(B)/libphoton.a $(LIBS) $$(pkg-config --libs benchmark) -lbenchmark_main

# Fuzz targets: clang + libFuzzer (see tests/fuzz/README.md). Each target links the objects of
# the sources its `// fuzz-sources:` line names (`all`: every library source); each source is
# compiled once, with coverage instrumentation and the sanitizers, into $(B)/fuzz/obj/ and shared
# by the targets that name it.
# UBSan findings abort, like ASan's, so that libFuzzer keeps the input and a smoke run fails.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CXXFLAGS := -std=c++20 -O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN) -Isrc -Iinclude \
	-I$(B) $(PKG_CFLAGS) -MMD -MP
fuzz_sources = $(shell sed -n 's|^// fuzz-sources: ||p' tests/fuzz/$(1).cc)
fuzz_objs = $(patsubst %.cc,$(B)/fuzz/obj/%.o,tests/fuzz/$(1).cc \
	$(if $(filter all,$(call fuzz_sources,$(1))),$(LIB_SRCS),$(call fuzz_sources,$(1))))

$(B)/fuzz/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CLANGXX) $(FUZZ_CXXFLAGS)' | cmp -s - $@ || echo '$(CLANGXX) $(FUZZ_CXXFLAGS)' > $@

$(B)/fuzz/obj/%.o: %.cc $(B)/fuzz/flags $(B)/config.h
	@mkdir -p $(@D)
	@test -n "$(CLANGXX)" || { echo "no clang++ with libFuzzer: install clang libclang-rt-14-dev and re-run ./configure"; exit 1; }
	$(CLANGXX) $(FUZZ_CXXFLAGS) -c $< -o $@
$(B)/fuzz/obj/src/worker/metrics_export.o: $(B)/gen/dashboard_html.inc
# Kept between builds: the targets share them.
.PRECIOUS: $(B)/fuzz/obj/%.o

.SECONDEXPANSION:
$(B)/fuzz/%: $$(call fuzz_objs,$$*)
	$(CLANGXX) -fsanitize=fuzzer $(FUZZ_SAN) $^ -o $@ $(LIBS)

# make check builds on every core unless the caller chose a job count.
CHECK_JOBS := $(if $(filter -j%,$(MAKEFLAGS)),,-j$(shell nproc 2>/dev/null || echo 2))

check:
	@$(MAKE) --no-print-directory $(CHECK_JOBS) WERROR=1 $(B)/photon $(B)/unit_tests lib $(B)/fake_resolver.so $(if $(CLANGXX),$(FUZZ_BINS),)
	@sh tests/run-all.sh

check-sanitizers:
	@sh contrib/check-sanitizers.sh

unit: $(B)/unit_tests
	$(B)/unit_tests

integration: $(B)/photon $(B)/fake_resolver.so
	/usr/bin/python3 tests/integration/run.py

# Test-only getaddrinfo() shim the integration tests preload (tests/integration/test_resolve.py).
$(B)/fake_resolver.so: tests/integration/fixtures/fake_resolver.cc
	$(CXX) -std=c++20 -O1 -fPIC -shared $(WFLAGS) -o $@ $< -ldl

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$${f##*/}; mkdir -p $(B)/fuzz/$$n.corpus; \
		echo "fuzzing $$n for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) $(B)/fuzz/$$n.corpus tests/fuzz/corpus/$${n%_fuzz} || exit 1; done

bench: $(B)/micro_bench
	$(B)/micro_bench $(BENCH_ARGS)

bench-load: $(B)/photon
	sh contrib/install-deps.sh --bench
	bash benchmarks/load/run.sh $(LOAD_ARGS)

SOAK_MINUTES ?= 30
soak: $(B)/photon
	/usr/bin/python3 benchmarks/soak/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

run: $(B)/photon
	@sh contrib/run-demo.sh $(B)/photon conf/photon.yaml

install: $(B)/photon
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(dir $(CONF_PATH)) $(DESTDIR)$(SYSCONFDIR)/examples
	install -m 755 $(B)/photon $(DESTDIR)$(SBINDIR)/photon
	install -m 644 man/photon.8 $(DESTDIR)$(MANDIR)/man8/photon.8
	install -m 644 man/photon.conf.5 $(DESTDIR)$(MANDIR)/man5/photon.conf.5
	@if [ -e $(DESTDIR)$(CONF_PATH) ]; then \
		echo "keeping existing $(DESTDIR)$(CONF_PATH); new default installed as $(DESTDIR)$(CONF_PATH).default"; \
		install -m 644 conf/photon.yaml $(DESTDIR)$(CONF_PATH).default; \
	else install -m 644 conf/photon.yaml $(DESTDIR)$(CONF_PATH); fi
	install -m 644 conf/examples/*.yaml $(DESTDIR)$(SYSCONFDIR)/examples/

# The library keeps its full version in the file name, the soname as a link (ldconfig's layout).
install-lib: lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/photon
	install -m 644 include/photon/photon.h $(DESTDIR)$(INCLUDEDIR)/photon/photon.h
	install -m 644 $(B)/libphoton.a $(DESTDIR)$(LIBDIR)/libphoton.a
	install -m 755 $(B)/libphoton.so $(DESTDIR)$(LIBDIR)/libphoton.so.$(VERSION)
	ln -sf libphoton.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libphoton.so
	install -m 644 $(B)/photon.pc $(DESTDIR)$(LIBDIR)/pkgconfig/photon.pc
	@if [ -z "$(DESTDIR)" ] && command -v ldconfig >/dev/null && [ "$$(id -u)" = 0 ]; then ldconfig; fi

uninstall-lib:
	rm -f $(DESTDIR)$(INCLUDEDIR)/photon/photon.h $(DESTDIR)$(LIBDIR)/libphoton.a \
		$(DESTDIR)$(LIBDIR)/libphoton.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/libphoton.so $(DESTDIR)$(LIBDIR)/pkgconfig/photon.pc
	-rmdir $(DESTDIR)$(INCLUDEDIR)/photon 2>/dev/null

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/photon $(DESTDIR)$(MANDIR)/man8/photon.8 $(DESTDIR)$(MANDIR)/man5/photon.conf.5
	rm -rf $(DESTDIR)$(SYSCONFDIR)/examples
	@echo "left $(DESTDIR)$(CONF_PATH) in place (your configuration)"

clean:
	rm -rf $(B)/obj $(B)/photon $(B)/libphoton.a $(B)/libphoton.so $(B)/photon.pc $(B)/unit_tests $(B)/micro_bench $(B)/fuzz $(B)/flags

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(TEST_OBJS:.o=.d) $(BENCH_OBJS:.o=.d)
-include $(shell find $(B)/fuzz/obj -name '*.d' 2>/dev/null)
