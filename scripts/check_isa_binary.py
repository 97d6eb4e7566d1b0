#!/usr/bin/env python3
"""Checks that a VeriDL binary runs on the portable base target: only the AVX2 and AVX-512 kernel variants
(functions in a veridl::kernels::isa_avx2 / isa_avx512 namespace, src/veridl/kernels/isa.hpp) hold AVX
instructions, and only the AVX-512 variants hold AVX-512 ones. A copy of a standard-library template or any
other function compiled with a wider instruction set than the base would be kept by the linker for the whole
program and fault on a lesser CPU; this is the check that it did not happen.

  python3 scripts/check_isa_binary.py BINARY...       (exit 1 and the offending functions on a violation)
  python3 scripts/check_isa_binary.py --self-test     (the check catches an AVX2 loop outside a variant)

AVX: any VEX/EVEX-encoded instruction (a mnemonic v*, e.g. vmovups, vfmadd231ps) or a ymm/zmm register.
AVX-512: a zmm register, xmm16-31 / ymm16-31, or an opmask register %k0-%k7.
"""
import os
import re
import subprocess
import sys
import tempfile

FUNC = re.compile(r'^[0-9a-f]+ <(.*)>:$')
INSN = re.compile(r'^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$')
AVX512 = re.compile(r'%zmm|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|%k[0-7]\b')


def is_avx(mnemonic, operands):
    return (mnemonic.startswith('v') and not mnemonic.startswith('verr') and not mnemonic.startswith('verw')) \
        or '%ymm' in operands or '%zmm' in operands


def violations(binary):
    out = subprocess.run(['objdump', '-d', '--no-show-raw-insn', '-C', binary], check=True, capture_output=True,
                         text=True).stdout
    bad = {}
    func = None
    for line in out.splitlines():
        m = FUNC.match(line)
        if m:
            func = m.group(1)
            continue
        m = INSN.match(line)
        if not m or func is None:
            continue
        mnemonic, operands = m.group(1), m.group(2)
        if 'isa_avx512' in func:
            continue
        if AVX512.search(operands):
            bad.setdefault(func, f'AVX-512 ({mnemonic} {operands})')
        elif 'isa_avx2' not in func and is_avx(mnemonic, operands):
            bad.setdefault(func, f'AVX ({mnemonic} {operands})')
    return bad


def self_test():
    src = r'''
#include <cstddef>
namespace %s { void scale(float* y, const float* x, std::size_t n) { for (std::size_t i = 0; i < n; ++i) y[i] = 3.0f * x[i] + y[i]; } }
int main() { return 0; }
'''
    ok = True
    with tempfile.TemporaryDirectory() as d:
        for ns, flags, want_bad in [('plain', ['-mavx2'], True), ('plain', ['-mavx512f'], True),
                                    ('veridl::kernels::isa_avx2', ['-mavx2'], False),
                                    ('veridl::kernels::isa_avx2', ['-mavx512f', '-mprefer-vector-width=512'], True),
                                    ('veridl::kernels::isa_avx512', ['-mavx512f', '-mprefer-vector-width=512'], False),
                                    ('plain', ['-march=x86-64-v2'], False)]:
            cpp, exe = os.path.join(d, 't.cpp'), os.path.join(d, 't')
            with open(cpp, 'w') as f:
                f.write(src % ns)
            subprocess.run(['g++', '-O3', *flags, cpp, '-o', exe], check=True)
            found = any('scale' in fn for fn in violations(exe))
            verdict = 'ok' if found == want_bad else 'WRONG'
            ok &= found == want_bad
            print(f'{verdict}: {ns} {" ".join(flags)}: {"flagged" if found else "accepted"}')
    return ok


def main():
    if sys.argv[1:] == ['--self-test']:
        sys.exit(0 if self_test() else 1)
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    failed = False
    for binary in sys.argv[1:]:
        bad = violations(binary)
        for func, why in sorted(bad.items()):
            print(f'{binary}: {func}: {why} outside its kernel variant')
        failed |= bool(bad)
        if not bad:
            print(f'{binary}: only the AVX2 / AVX-512 kernel variants use AVX / AVX-512')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
