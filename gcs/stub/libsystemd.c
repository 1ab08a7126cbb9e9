/*
 * The guest's libsystemd.so.0, for crun: Debian's crun links libsystemd for
 * what needs systemd running (the systemd cgroup manager over D-Bus, the
 * journald log driver, sd_notify to a supervisor). The guest has no systemd,
 * no D-Bus and no journald, and the agent runs crun with neither
 * --systemd-cgroup nor a journald log, so none of that can work there; the
 * real library only costs its load: it brings libgcrypt, libgpg-error, liblz4,
 * liblzma and libzstd with it, six of crun's ten libraries, loaded and
 * relocated on every crun start (twice per container). These stand-ins have
 * the names and symbol versions crun imports (gcs/stub/libsystemd.map;
 * gcs/stub/covers checks at build time that they are all there, else the
 * real library goes in) and answer as a system without systemd would:
 * sd_notify finds no supervisor (0), every bus call fails with -ENOSYS, the
 * journal refuses.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define EXPORT __attribute__((visibility("default")))

/* No NOTIFY_SOCKET supervisor: nothing to tell, as libsystemd answers then. */
EXPORT int sd_notify(int unset_environment, const char *state)
{
	return 0;
}

EXPORT int sd_notify_barrier(int unset_environment, uint64_t timeout)
{
	return 0;
}

EXPORT int sd_journal_send_with_location(const char *file, const char *line, const char *func,
					 const char *format, ...)
{
	return -ENOSYS;
}

/* The bus: no D-Bus in the guest. Every call that could open or use one fails. */
struct sd_bus;
struct sd_bus_message;
struct sd_bus_error;
struct sd_bus_slot;

EXPORT int sd_bus_default_system(struct sd_bus **bus)
{
	return -ENOSYS;
}

EXPORT int sd_bus_default_user(struct sd_bus **bus)
{
	return -ENOSYS;
}

EXPORT int sd_bus_call(struct sd_bus *bus, struct sd_bus_message *m, uint64_t usec,
		       struct sd_bus_error *ret_error, struct sd_bus_message **reply)
{
	return -ENOSYS;
}

EXPORT int sd_bus_process(struct sd_bus *bus, struct sd_bus_message **r)
{
	return -ENOSYS;
}

EXPORT int sd_bus_wait(struct sd_bus *bus, uint64_t timeout_usec)
{
	return -ENOSYS;
}

EXPORT int sd_bus_match_signal_async(struct sd_bus *bus, struct sd_bus_slot **ret,
				     const char *sender, const char *path, const char *interface,
				     const char *member, void *callback, void *install_callback,
				     void *userdata)
{
	return -ENOSYS;
}

EXPORT int sd_bus_message_new_method_call(struct sd_bus *bus, struct sd_bus_message **m,
					  const char *destination, const char *path,
					  const char *interface, const char *member)
{
	return -ENOSYS;
}

EXPORT int sd_bus_message_append(struct sd_bus_message *m, const char *types, ...)
{
	return -ENOSYS;
}

EXPORT int sd_bus_message_append_strv(struct sd_bus_message *m, char **l)
{
	return -ENOSYS;
}

EXPORT int sd_bus_message_open_container(struct sd_bus_message *m, char type, const char *contents)
{
	return -ENOSYS;
}

EXPORT int sd_bus_message_close_container(struct sd_bus_message *m)
{
	return -ENOSYS;
}

EXPORT int sd_bus_message_read(struct sd_bus_message *m, const char *types, ...)
{
	return -ENOSYS;
}

EXPORT int sd_bus_error_get_errno(const struct sd_bus_error *e)
{
	return ENOSYS;
}

EXPORT void sd_bus_error_free(struct sd_bus_error *e)
{
}

EXPORT struct sd_bus_message *sd_bus_message_unref(struct sd_bus_message *m)
{
	return NULL;
}

EXPORT struct sd_bus *sd_bus_unref(struct sd_bus *bus)
{
	return NULL;
}
