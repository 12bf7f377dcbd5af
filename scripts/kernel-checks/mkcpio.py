"""Writes a directory tree as an initramfs: an uncompressed cpio archive in the
kernel's "newc" format, without the cpio tool.  Regular files, directories
and symlinks are written (hard links as separate files); /dev/console is
added as a character device (5, 1), which the kernel opens for init's stdin,
stdout and stderr before anything is mounted.  Owners and modes are kept;
times are zero, so the same tree gives the same archive.

Usage: python3 mkcpio.py ROOT OUTPUT
Uncompressed: under TCG, gunzip in the guest costs more than reading the
larger file does.
"""
import os
import stat
import sys


def header(out, name, mode, uid=0, gid=0, nlink=1, size=0, rdev=(0, 0), ino=0):
    data = name.encode() + b"\0"
    fields = (ino, mode, uid, gid, nlink, 0, size, 0, 0, rdev[0], rdev[1], len(data), 0)
    out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + data)
    out.write(b"\0" * (-(110 + len(data)) % 4))


def pad(out, n):
    out.write(b"\0" * (-n % 4))


def main(root, output):
    root = root.rstrip("/")
    ino = 0
    with open(output + ".tmp", "wb") as out:
        have_console = False
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for name in [None] + sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = dirpath if name is None else os.path.join(dirpath, name)
                rel = rel_dir if name is None else os.path.normpath(os.path.join(rel_dir, name))
                if rel == ".":
                    continue
                st = os.lstat(path)
                ino += 1
                common = dict(mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, ino=ino)
                if stat.S_ISDIR(st.st_mode):
                    header(out, rel, nlink=2, **common)
                elif stat.S_ISLNK(st.st_mode):
                    target = os.readlink(path).encode()
                    header(out, rel, size=len(target), **common)
                    out.write(target)
                    pad(out, len(target))
                elif stat.S_ISREG(st.st_mode):
                    header(out, rel, size=st.st_size, **common)
                    with open(path, "rb") as f:
                        n = 0
                        while True:
                            chunk = f.read(1 << 20)
                            if not chunk:
                                break
                            out.write(chunk)
                            n += len(chunk)
                    if n != st.st_size:
                        sys.exit(f"mkcpio: {path} changed while being read")
                    pad(out, n)
                elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                    if rel == "dev/console":
                        have_console = True
                    header(out, rel, rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)), **common)
                # sockets and fifos: left out
        if not have_console:
            ino += 1
            header(out, "dev/console", mode=stat.S_IFCHR | 0o600, rdev=(5, 1), ino=ino)
        header(out, "TRAILER!!!", mode=0, nlink=1)
        out.write(b"\0" * (-out.tell() % 512))
    os.replace(output + ".tmp", output)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
