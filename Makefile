# notebookd — build, run and test.
#
#   make            release build (build/notebookd)
#   make run        install what is missing, start a private PostgreSQL under
#                   var/ (unless DATABASE_URL is set), migrate, serve
#   make stop       stop the private PostgreSQL
#   make test       every test against a throwaway PostgreSQL cluster
#   make asan       the same tests under AddressSanitizer + UBSan
#   make bench      benchmarks (see bench/README.md)
#   make loadtest   the original system's load test: 1,000 users on a seeded dataset (bench/README.md)
#   make soak       the load test's scenario at a moderate rate for SOAK_MINUTES (30), checked for trends
#   make fuzz       build the fuzz drivers (clang + libFuzzer); scripts/fuzz.sh runs them

CC      ?= cc
PKGS    := libpq libuv jansson libsodium libcurl poppler-glib glib-2.0 libxml-2.0 libcmark icu-uc icu-i18n
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null | sed 's/-I/-isystem /g')
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread -lm

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wno-unused-parameter -Wvla
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE $(WARN) -Isrc -Ibuild/gen $(PKG_CFLAGS) $(EXTRA_CFLAGS)

MODE    ?= release
ifeq ($(MODE),asan)
  CFLAGS := $(CFLAGS_COMMON) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(MODE),debug)
  CFLAGS := $(CFLAGS_COMMON) -O0 -g
else
  CFLAGS := $(CFLAGS_COMMON) -O2 -g
endif
ifeq ($(WERROR),1)
  CFLAGS += -Werror
endif

OUT     := build/$(MODE)
SRCS    := $(sort $(wildcard src/*/*.c))
OBJS    := $(patsubst src/%.c,$(OUT)/obj/%.o,$(SRCS)) $(OUT)/obj/gen/migrations.o $(OUT)/obj/gen/openapi.o $(OUT)/obj/gen/web.o
MAIN_OBJ := $(OUT)/obj/main.o
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
INTEG_SRCS := $(sort $(wildcard tests/integration/test_*.c))
UNIT_BINS := $(patsubst tests/%.c,$(OUT)/tests/%,$(UNIT_SRCS))
INTEG_BINS := $(patsubst tests/%.c,$(OUT)/tests/%,$(INTEG_SRCS))
MIGRATIONS := $(sort $(wildcard sql/migrations/*.sql))
WEB_FILES := $(shell find web -type f ! -name '.*' 2>/dev/null)

.PHONY: all run stop test asan bench loadtest soak fuzz clean deps tests-build FORCE

all: build/notebookd

build/notebookd: $(OUT)/notebookd
	@if [ "$(MODE)" = release ]; then cp $< $@; fi

$(OUT)/notebookd: $(MAIN_OBJ) $(OUT)/libnotebookd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(OUT)/libnotebookd.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(OUT)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# The list of migrations is a prerequisite too: a renamed or removed file
# changes it, and the compiled-in set must follow.
build/gen/migrations.list: FORCE
	@mkdir -p build/gen
	@echo '$(MIGRATIONS)' | cmp -s - $@ || echo '$(MIGRATIONS)' > $@

build/gen/migrations.c: $(MIGRATIONS) build/gen/migrations.list tools/embed_sql.sh
	@mkdir -p build/gen
	sh tools/embed_sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

# docs/openapi.json, served at GET /openapi.json, compiled in the same way
build/gen/openapi.c: docs/openapi.json tools/embed_file.sh
	@mkdir -p build/gen
	sh tools/embed_file.sh nb_openapi_json docs/openapi.json > $@.tmp && mv $@.tmp $@

# the web app (web/), served at / and /assets/<version>/: hashed and gzipped at build time
build/gen/web.c: $(WEB_FILES) tools/embed_web.sh
	@mkdir -p build/gen
	sh tools/embed_web.sh web > $@.tmp && mv $@.tmp $@

$(OUT)/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(OUT)/tests/%: tests/%.c $(OUT)/libnotebookd.a tests/t.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -MMD -MP -o $@ $< $(OUT)/libnotebookd.a $(LDFLAGS) $(PKG_LIBS)

tests-build: $(OUT)/notebookd $(UNIT_BINS) $(INTEG_BINS)

deps:
	@sh scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run.sh

stop:
	@sh scripts/pg.sh stop

test: deps
	@$(MAKE) --no-print-directory MODE=release tests-build build/notebookd
	@sh scripts/test.sh release

asan: deps
	@$(MAKE) --no-print-directory MODE=asan tests-build
	@sh scripts/test.sh asan

bench: deps
	@sh scripts/deps.sh --bench
	@$(MAKE) --no-print-directory MODE=release all tests-build
	@sh bench/run.sh

loadtest: deps
	@sh scripts/deps.sh --bench
	@$(MAKE) --no-print-directory MODE=release all
	@sh bench/loadtest.sh

soak: deps
	@sh scripts/deps.sh --bench
	@$(MAKE) --no-print-directory MODE=release all
	@sh bench/soak.sh

fuzz:
	@$(MAKE) --no-print-directory -f fuzz/Makefile

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

FORCE:
