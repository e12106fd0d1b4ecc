/*
 * bcryptprimitives.dll for Wine 8.0, which lacks it.
 *
 * Go's Windows runtime (since Go 1.22) draws its random numbers from
 * ProcessPrng in bcryptprimitives.dll and dies at start-up without it
 * ("fatal error: bcryptprimitives.dll not found"). Windows 10 and later ship
 * the DLL; Wine 8.0 does not. This one exports ProcessPrng by calling
 * RtlGenRandom (exported by advapi32 as SystemFunction036), which Wine has.
 * See https://learn.microsoft.com/en-us/windows/win32/seccng/processprng and
 * https://learn.microsoft.com/en-us/windows/win32/api/ntsecapi/nf-ntsecapi-rtlgenrandom
 *
 * It is for running the test binaries under Wine only (scripts/wine-test
 * builds it with mingw-w64 into the Wine prefix's system32); it is never
 * shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T n)
{
	while (n > 0) {
		ULONG k = n > 0x10000000 ? 0x10000000 : (ULONG)n;
		if (!SystemFunction036(data, k))
			return FALSE;
		data += k;
		n -= k;
	}
	return TRUE;
}
