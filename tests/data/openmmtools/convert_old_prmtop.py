"""Rewrite a pre-Amber-7 ("old-style", no %FLAG sections) prmtop in the %FLAG format OpenMM reads.

Usage: ``python convert_old_prmtop.py OLD.prmtop NEW.prmtop``. Values are copied unchanged (charges stay in
Amber's internal units, times 18.2223); only the layout changes: each section gets its %FLAG/%FORMAT header,
integers go from 12I6 to 10I8. The section order and counts are those of Amber 6's ``rdparm`` (the same
reading as ParmEd's ``AmberFormat.rdparm_old``). Used once to make ``trpzip2-explicit/trpzip2.prmtop.gz``.
"""

import sys


def _read(lines, pos, count, width, per_line, kind):
    """``count`` fixed-width fields starting at line ``pos``; returns (values as strings, next line)."""
    out = []
    while len(out) < count:
        line = lines[pos].rstrip("\n")
        n = min(per_line, count - len(out))
        out.extend(line[k * width:(k + 1) * width] for k in range(n))
        pos += 1
    if count == 0:
        pos += 1  # an empty section is one blank line
    if kind == "i":
        out = [int(v) for v in out]
    elif kind == "f":
        out = [float(v) for v in out]
    return out, pos


def _write(f, flag, fmt, values):
    f.write(f"%FLAG {flag:<74s}\n%FORMAT({fmt})\n")
    spec = {"20a4": (20, lambda v: f"{v:<4s}"[:4]), "10I8": (10, lambda v: f"{v:8d}"),
            "5E16.8": (5, lambda v: f"{v:16.8E}")}[fmt]
    per, cell = spec
    if not values:
        f.write("\n")
    for k in range(0, len(values), per):
        f.write("".join(cell(v) for v in values[k:k + per]) + "\n")


def convert(old_path, new_path):
    lines = open(old_path).readlines()
    title = lines[0].strip()
    p, pos = _read(lines, 1, 30, 6, 12, "i")
    natom, ntypes, nbonh, _, ntheth, _, nphih, _, _, _, nnb, nres = p[:12]
    nbona, ntheta, nphia, numbnd, numang, nptra, natyp, nphb = p[12:20]
    ifpert, ifbox, ifcap = p[20], p[27], p[29]
    if ifpert:
        raise ValueError("perturbation prmtop files (IFPERT=1) are not handled.")
    sections = [  # (flag, count, kind, new format)
        ("ATOM_NAME", natom, "s", "20a4"), ("CHARGE", natom, "f", "5E16.8"), ("MASS", natom, "f", "5E16.8"),
        ("ATOM_TYPE_INDEX", natom, "i", "10I8"), ("NUMBER_EXCLUDED_ATOMS", natom, "i", "10I8"),
        ("NONBONDED_PARM_INDEX", ntypes ** 2, "i", "10I8"), ("RESIDUE_LABEL", nres, "s", "20a4"),
        ("RESIDUE_POINTER", nres, "i", "10I8"), ("BOND_FORCE_CONSTANT", numbnd, "f", "5E16.8"),
        ("BOND_EQUIL_VALUE", numbnd, "f", "5E16.8"), ("ANGLE_FORCE_CONSTANT", numang, "f", "5E16.8"),
        ("ANGLE_EQUIL_VALUE", numang, "f", "5E16.8"), ("DIHEDRAL_FORCE_CONSTANT", nptra, "f", "5E16.8"),
        ("DIHEDRAL_PERIODICITY", nptra, "f", "5E16.8"), ("DIHEDRAL_PHASE", nptra, "f", "5E16.8"),
        ("SOLTY", natyp, "f", "5E16.8"), ("LENNARD_JONES_ACOEF", ntypes * (ntypes + 1) // 2, "f", "5E16.8"),
        ("LENNARD_JONES_BCOEF", ntypes * (ntypes + 1) // 2, "f", "5E16.8"),
        ("BONDS_INC_HYDROGEN", 3 * nbonh, "i", "10I8"), ("BONDS_WITHOUT_HYDROGEN", 3 * nbona, "i", "10I8"),
        ("ANGLES_INC_HYDROGEN", 4 * ntheth, "i", "10I8"), ("ANGLES_WITHOUT_HYDROGEN", 4 * ntheta, "i", "10I8"),
        ("DIHEDRALS_INC_HYDROGEN", 5 * nphih, "i", "10I8"), ("DIHEDRALS_WITHOUT_HYDROGEN", 5 * nphia, "i", "10I8"),
        ("EXCLUDED_ATOMS_LIST", nnb, "i", "10I8"), ("HBOND_ACOEF", nphb, "f", "5E16.8"),
        ("HBOND_BCOEF", nphb, "f", "5E16.8"), ("HBCUT", nphb, "f", "5E16.8"),
        ("AMBER_ATOM_TYPE", natom, "s", "20a4"), ("TREE_CHAIN_CLASSIFICATION", natom, "s", "20a4"),
        ("JOIN_ARRAY", natom, "i", "10I8"), ("IROTAT", natom, "i", "10I8"),
    ]
    width = {"s": (4, 20), "i": (6, 12), "f": (16, 5)}
    data = []
    for flag, count, kind, fmt in sections:
        values, pos = _read(lines, pos, count, *width[kind], kind)
        data.append((flag, fmt, values))
    if ifbox:
        sol, pos = _read(lines, pos, 3, 6, 12, "i")
        per_mol, pos = _read(lines, pos, sol[1], 6, 12, "i")
        box, pos = _read(lines, pos, 4, 16, 5, "f")
        data += [("SOLVENT_POINTERS", "10I8", sol), ("ATOMS_PER_MOLECULE", "10I8", per_mol),
                 ("BOX_DIMENSIONS", "5E16.8", box)]
    if ifcap:
        raise ValueError("prmtop files with a solvent cap (IFCAP=1) are not handled.")
    if any(line.strip() for line in lines[pos:]):
        raise ValueError(f"{old_path}: unread lines from line {pos + 1}; not an old-style prmtop as expected.")
    with open(new_path, "w") as f:
        f.write(f"%VERSION  VERSION_STAMP = V0001.000  DATE = 00/00/00  00:00:00{'':<26s}\n")
        _write(f, "TITLE", "20a4", [title[k:k + 4] for k in range(0, len(title), 4)] or [""])
        _write(f, "POINTERS", "10I8", p + [0])
        for flag, fmt, values in data:
            _write(f, flag, fmt, values)


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2])
