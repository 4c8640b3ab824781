"""CMMLU in its released layout: dev/ and test/ folders of `{subject}.csv` with header `,Question,A,B,C,D,Answer`."""


from research.eval.datasets.base import Collector, existing, files_in, read_csv, split_folders

NAME = "cmmlu"
LANGUAGE = "zh"
DEFAULT_SPLIT = "test"
HEADER = ["", "Question", "A", "B", "C", "D", "Answer"]


def load(path: str | None, c: Collector) -> None:
    for split, folder in split_folders(existing(path, NAME), NAME, ("dev", "test")).items():
        for file in files_in(folder, (".csv",), NAME):
            subject = file.stem
            header = None
            for n, row in read_csv(file, c):
                if header is None:
                    header = [x.strip() for x in row]
                    if header != HEADER:
                        c.reject(file, n, f"header is {','.join(row)!r}, expected {','.join(HEADER)!r}")
                        break
                    continue
                if len(row) != 7:
                    c.reject(file, n, f"expected 7 columns {HEADER}, got {len(row)}")
                    continue
                c.add(split, file, n, id=f"{subject}/{split}/{row[0].strip() or n}", subject=subject,
                      question=row[1], choices=row[2:6], answer=row[6], language=LANGUAGE)


def category(subject: str) -> str:
    return ""
