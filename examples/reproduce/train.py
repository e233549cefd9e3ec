"""Train and evaluate LTML, its ablation rows or a baseline; see examples/reproduce/README.md.

python examples/reproduce/train.py                      # full LTML on the embedded demo
python examples/reproduce/train.py --row u-only         # an ablation row
python examples/reproduce/train.py --dataset voc-lt --data-root data/voc --row ltml
python examples/reproduce/train.py --dataset csv --train-csv labels.csv --image-root photos \
    --test-fraction 0.2
torchrun --nproc_per_node 4 examples/reproduce/train.py --dataset coco-lt --data-root data/coco
"""

import sys

from ltml_example import resolve, run
from ltml_example.errors import told_in_one_paragraph


def main(argv: list[str] | None = None) -> None:
    run(resolve(argv))


if __name__ == "__main__":
    # a mistake in the flags or the files (ltml_example.errors) is one paragraph; a bug a traceback
    with told_in_one_paragraph("train.py"):
        main(sys.argv[1:])
