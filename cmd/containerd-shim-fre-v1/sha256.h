/* SHA-256 (FIPS 180-4), for the start command's socket address. */
#ifndef FRE_SHA256_H
#define FRE_SHA256_H
#include <stddef.h>
#include <stdint.h>

void fre_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
