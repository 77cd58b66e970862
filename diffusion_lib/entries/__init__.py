"""The book's zoo entries, one module per chapter that introduces models (``chapterNN.py``);
the zoo imports every module here on first use, and each registers its entries."""
