# pgjobd: plain GNU make.  `make` builds build/pgjobd; `make check` runs every
# test against a throwaway PostgreSQL; `make demo`, `make bench`; `make install`.

PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/pgjobd
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
DESTDIR    ?=

CC      := gcc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wcast-qual -Wformat=2 -Wvla -Werror
STD     := -std=gnu11 -D_GNU_SOURCE
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# pkg-config is queried lazily (=) so that `make deps` can install it first.
# Debian's libev-dev ships no .pc file, hence the fallback.
PKG_CFLAGS  = $(shell pkg-config --cflags libpq inih libcares libmicrohttpd)
PKG_LIBS    = $(shell pkg-config --libs libpq inih libcares libmicrohttpd) $(shell pkg-config --libs libev 2>/dev/null || echo -lev)
CHECK_FLAGS = $(shell pkg-config --cflags --libs check)

B := build
VERSION := $(shell cat src/VERSION)

CFG_OBJS := cfg.o cfg_ini.o cfg_field.o cfg_value.o
DAEMON_OBJS := main.o log.o xmalloc.o buf.o $(CFG_OBJS) migrate.o migrations.o downgrades.o \
               stmts.o db.o conninfo.o resolve.o \
               daemon.o daemon_jobs.o job.o outcome.o exchange.o heartbeat.o rescue.o schedule.o wake.o \
               strays.o maintain.o sdnotify.o spawn.o tail.o ctl.o ctl_verbs.o ctl_doctor.o ctl_admin.o ctl_out.o \
               metrics.o metrics_http.o
SQL := $(sort $(wildcard sql/*.sql))
DOWN_SQL := $(sort $(wildcard sql/down/*.sql))
STMT_SQL := $(sort $(wildcard sql/stmt/*.sql))

# Each unit test links only the module it tests (plus the test helpers).
TESTS      := check_cfg check_cfg_value check_cfg_errors check_cfg_ini check_sql check_enqueue \
              check_stmt check_storage check_roles check_roles_migrate check_outcome check_cli \
              check_tail check_spawn check_spawn_kill check_daemon check_jobs check_fence \
              check_strays check_notify check_ops check_ctl check_ctl_admin check_conninfo \
              check_resolve check_net check_net_dead check_metrics check_metrics_http \
              check_cronspec check_schedule check_counts check_plans check_later
check_cfg_OBJS := $(CFG_OBJS) xmalloc.o t_cfglib.o
check_cfg_value_OBJS := cfg_value.o xmalloc.o
check_cfg_errors_OBJS := $(CFG_OBJS) xmalloc.o t_cfglib.o
check_cfg_ini_OBJS := $(CFG_OBJS) xmalloc.o t_cfglib.o
check_sql_OBJS := t_sqllib.o
check_enqueue_OBJS := t_sqllib.o
check_stmt_OBJS := stmts.o
check_roles_OBJS := stmts.o t_daemonlib.o t_rolelib.o
check_roles_migrate_OBJS := t_daemonlib.o t_rolelib.o
check_storage_OBJS := stmts.o t_storelib.o
check_plans_OBJS := stmts.o t_storelib.o
check_outcome_OBJS := outcome.o $(CFG_OBJS) xmalloc.o
check_cli_OBJS :=
check_tail_OBJS := tail.o
check_spawn_OBJS := spawn.o tail.o t_spawnlib.o
check_spawn_kill_OBJS := spawn.o tail.o t_spawnlib.o
check_daemon_OBJS := t_daemonlib.o
check_jobs_OBJS := t_daemonlib.o
check_fence_OBJS :=
check_strays_OBJS :=
check_notify_OBJS :=
check_ops_OBJS := $(CFG_OBJS) xmalloc.o
check_ctl_OBJS := t_ctllib.o
check_ctl_admin_OBJS := t_ctllib.o
check_conninfo_OBJS := conninfo.o xmalloc.o buf.o
check_resolve_OBJS := resolve.o log.o xmalloc.o
check_net_OBJS := t_netlib.o
check_net_dead_OBJS := t_netlib.o
check_metrics_OBJS := metrics.o outcome.o buf.o $(CFG_OBJS) xmalloc.o t_promtext.o
check_metrics_http_OBJS := buf.o xmalloc.o t_promtext.o
check_cronspec_OBJS :=
check_schedule_OBJS :=
check_counts_OBJS := stmts.o t_storelib.o
check_later_OBJS := stmts.o t_storelib.o t_daemonlib.o
# Run once, outside the sanitizer loop: it installs the package (make deb)
# into a Debian 12 booted by tests/with-nspawn.sh, when the machine can.
ONCE_TESTS := check_systemd
check_systemd_OBJS :=

.PHONY: all deps check demo bench deb install uninstall clean format
all: deps $(B)/pgjobd

deps:
	@contrib/deps.sh

$(B) $(B)/asan:
	@mkdir -p $@

$(B)/migrations.c: $(SQL) src/mksql.sh | $(B)
	src/mksql.sh migrations $(SQL) > $@.tmp && mv $@.tmp $@
$(B)/downgrades.c: $(DOWN_SQL) src/mksql.sh | $(B)
	src/mksql.sh downgrades $(DOWN_SQL) > $@.tmp && mv $@.tmp $@
$(B)/stmts.c: $(STMT_SQL) src/mksql.sh | $(B)
	src/mksql.sh stmts $(STMT_SQL) > $@.tmp && mv $@.tmp $@
$(B)/stmts.h: $(STMT_SQL) src/mksql.sh | $(B)
	src/mksql.sh stmts-h $(STMT_SQL) > $@.tmp && mv $@.tmp $@

# Every object may include the generated stmts.h (order-only: -MMD tracks it after).
$(B)/%.o: src/%.c | $(B) $(B)/stmts.h
	$(CC) $(STD) $(CFLAGS) $(WARN) -DPGJOBD_VERSION='"$(VERSION)"' $(PKG_CFLAGS) -iquote src -iquote $(B) -MMD -MP -c -o $@ $<
$(B)/asan/%.o: src/%.c | $(B)/asan $(B)/stmts.h
	$(CC) $(STD) -O1 -g $(SAN) $(WARN) -DPGJOBD_VERSION='"$(VERSION)"' $(PKG_CFLAGS) -iquote src -iquote $(B) -MMD -MP -c -o $@ $<
$(B)/migrations.o $(B)/downgrades.o $(B)/stmts.o: $(B)/%.o: $(B)/%.c $(B)/stmts.h
	$(CC) $(STD) $(CFLAGS) $(WARN) -iquote src -iquote $(B) -c -o $@ $<
$(B)/asan/migrations.o $(B)/asan/downgrades.o $(B)/asan/stmts.o: $(B)/asan/%.o: $(B)/%.c $(B)/stmts.h | $(B)/asan
	$(CC) $(STD) -O1 -g $(SAN) $(WARN) -iquote src -iquote $(B) -c -o $@ $<

$(B)/pgjobd: $(addprefix $(B)/,$(DAEMON_OBJS))
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)
$(B)/asan/pgjobd: $(addprefix $(B)/asan/,$(DAEMON_OBJS))
	$(CC) $(SAN) -g -o $@ $^ $(PKG_LIBS)

# tests/testlib.c: cluster connection and process helpers shared by suites;
# other tests/NAME.c helpers are linked by naming t_NAME.o in check_*_OBJS.
$(B)/t_%.o: tests/%.c | $(B) $(B)/stmts.h
	$(CC) $(STD) $(CFLAGS) $(WARN) $(PKG_CFLAGS) -iquote src -iquote $(B) -iquote tests -MMD -MP -c -o $@ $<
$(B)/asan/t_%.o: tests/%.c | $(B)/asan $(B)/stmts.h
	$(CC) $(STD) -O1 -g $(SAN) $(WARN) $(PKG_CFLAGS) -iquote src -iquote $(B) -iquote tests -MMD -MP -c -o $@ $<

define test_rules
$(B)/$(1): $(B)/t_$(1).o $(B)/t_testlib.o $(addprefix $(B)/,$($(1)_OBJS))
	$$(CC) $$(CFLAGS) -o $$@ $$^ $$(CHECK_FLAGS) $$(PKG_LIBS)
$(B)/asan/$(1): $(B)/asan/t_$(1).o $(B)/asan/t_testlib.o $(addprefix $(B)/asan/,$($(1)_OBJS))
	$$(CC) $$(SAN) -g -o $$@ $$^ $$(CHECK_FLAGS) $$(PKG_LIBS)
endef
$(foreach t,$(TESTS) $(ONCE_TESTS),$(eval $(call test_rules,$(t))))

# Every suite runs twice: plain, and under AddressSanitizer + UBSan (the
# integration suites then drive the sanitized daemon), against one cluster.
check: deps
	@$(MAKE) --no-print-directory $(B)/pgjobd $(B)/asan/pgjobd \
	    $(addprefix $(B)/,$(TESTS) $(ONCE_TESTS)) $(addprefix $(B)/asan/,$(TESTS))
	@if [ "$$(id -u)" -eq 0 ]; then contrib/deb.sh $(B); fi
	PGJOBD_ONCE="$(ONCE_TESTS)" PGJOBD_DEB=$(DEB) tests/with-pg.sh tests/run-suites.sh $(B) $(TESTS)

demo: all
	contrib/demo.sh $(B)/pgjobd

# contrib/spawnrate.c measures the machine's own limits beside the daemon.
# contrib/bench.sh starts its own cluster with default durability;
# SCALE=1M makes the storage run quicker than the default 10M.
bench: all
	$(CC) $(STD) $(CFLAGS) $(WARN) $(PKG_CFLAGS) -o $(B)/spawnrate contrib/spawnrate.c $(PKG_LIBS)
	SCALE=$(or $(SCALE),10M) contrib/bench.sh $(B)/pgjobd $(B)/spawnrate

# Files installed, relative to DESTDIR; `make uninstall` removes exactly these.
# The example config becomes the config only where none exists yet, and is
# removed again only while it is unchanged.  Units name $(SBINDIR)/pgjobd.
UNITS := $(notdir $(wildcard systemd/*.service))
# Only the binary, not `all`: the package build (make deb) runs this target
# and must not run `make deps`.
install: $(B)/pgjobd
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(SYSCONFDIR)/pgjobd $(DESTDIR)$(UNITDIR)
	install -m 0755 $(B)/pgjobd $(DESTDIR)$(SBINDIR)/pgjobd
	install -m 0644 src/pgjobd.8 $(DESTDIR)$(MANDIR)/man8/pgjobd.8
	install -m 0644 src/pgjobd.ini.5 $(DESTDIR)$(MANDIR)/man5/pgjobd.ini.5
	install -m 0644 $(SQL) $(DESTDIR)$(DATADIR)/sql/
	install -m 0644 contrib/monitoring.sql contrib/postgres_exporter.yml $(DESTDIR)$(DATADIR)/
	test -e $(DESTDIR)$(SYSCONFDIR)/pgjobd/pgjobd.ini || \
	    install -m 0640 etc/pgjobd.ini $(DESTDIR)$(SYSCONFDIR)/pgjobd/pgjobd.ini
	for u in $(UNITS); do \
	    sed 's|/usr/sbin/pgjobd|$(SBINDIR)/pgjobd|g' systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/pgjobd $(DESTDIR)$(MANDIR)/man8/pgjobd.8 \
	    $(DESTDIR)$(MANDIR)/man5/pgjobd.ini.5 \
	    $(addprefix $(DESTDIR)$(DATADIR)/sql/,$(notdir $(SQL))) \
	    $(DESTDIR)$(DATADIR)/monitoring.sql $(DESTDIR)$(DATADIR)/postgres_exporter.yml \
	    $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	if cmp -s etc/pgjobd.ini $(DESTDIR)$(SYSCONFDIR)/pgjobd/pgjobd.ini; then \
	    rm -f $(DESTDIR)$(SYSCONFDIR)/pgjobd/pgjobd.ini; fi
	-rmdir $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR) $(DESTDIR)$(SYSCONFDIR)/pgjobd 2>/dev/null

# The Debian package, build/pgjobd_VERSION_ARCH.deb (contrib/debian/).
DEB = $(B)/pgjobd_$(VERSION)_$(shell dpkg --print-architecture).deb
deb: deps
	contrib/deb.sh $(B)

format:
	clang-format -i src/*.c src/*.h tests/*.c tests/*.h

clean:
	rm -rf $(B)

-include $(wildcard $(B)/*.d $(B)/asan/*.d)
