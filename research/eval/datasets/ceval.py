"""C-Eval in its released layout: dev/, val/, test/ folders of `{subject}_{split}.csv` with header
`id,question,A,B,C,D,answer,explanation`. The test split's answers are withheld, so `val` is scored by default."""


from research.eval.datasets.base import Collector, existing, files_in, read_csv, split_folders

NAME = "ceval"
LANGUAGE = "zh"
DEFAULT_SPLIT = "val"
REQUIRED = ("id", "question", "A", "B", "C", "D", "answer")


def load(path: str | None, c: Collector) -> None:
    for split, folder in split_folders(existing(path, NAME), NAME, ("dev", "val", "test")).items():
        for file in files_in(folder, (".csv",), NAME):
            subject = file.stem.removesuffix(f"_{split}")
            header = None
            for n, row in read_csv(file, c):
                if header is None:
                    header = [h.strip() for h in row]
                    missing = [k for k in REQUIRED if k not in header]
                    if missing:
                        c.reject(file, n, f"header lacks {missing} (expected {','.join(REQUIRED)},explanation)")
                        break
                    continue
                if len(row) != len(header):
                    c.reject(file, n, f"expected {len(header)} columns, got {len(row)}")
                    continue
                r = dict(zip(header, row, strict=True))
                c.add(split, file, n, id=f"{subject}/{split}/{r['id'].strip()}", subject=subject,
                      question=r["question"], choices=[r[k] for k in "ABCD"], answer=r["answer"], language=LANGUAGE)


def category(subject: str) -> str:
    return ""

