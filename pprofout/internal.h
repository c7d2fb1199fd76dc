/* internal.h — shared by the files of pprofout/ only. */
#ifndef PPROFC_PPROFOUT_INTERNAL_H
#define PPROFC_PPROFOUT_INTERNAL_H

#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at s (1-4), or 0 when s starts
 * with a byte that is not one (overlong forms, surrogates and code points
 * past U+10FFFF are not).  Never reads past a NUL. */
size_t pp_utf8_len(const unsigned char *s);

#endif
