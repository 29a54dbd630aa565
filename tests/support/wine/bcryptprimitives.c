/* Test support only. Wine 8 (Debian 12) has no bcryptprimitives.dll, from
 * which Rust's standard library takes ProcessPrng (Windows 10+). This
 * stand-in, placed beside rescue.exe under wine, forwards to RtlGenRandom
 * (advapi32's SystemFunction036). Real Windows never loads it. */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!RtlGenRandom(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
