/* Small helpers every folder uses. */
#ifndef VMM_UTIL_H
#define VMM_UTIL_H

#include <stddef.h>

/* The struct of type that embeds member at ptr. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
