from puzzles.similarity import (ShingleIndex, ast_shape, distinct_ngrams,
                                 mean_pairwise_similarity, shingles)

A = "def f(x: int, a=3):\n    return x * x == a + 6\n"
A_REFORMATTED = "def f(x:int,a=3):\n  return x*x==a+6  # same tokens\n"
A_CONSTANT = "def f(x: int, a=4):\n    return x * x == a + 6\n"
B = "def f(s: str):\n    return s.count('z') == 7 and s.startswith('q')\n"


def test_shingles_ignore_formatting_and_comments():
    assert shingles(A) == shingles(A_REFORMATTED)


def test_index_finds_the_nearest_stored_puzzle():
    index = ShingleIndex(3)
    index.add("a", A)
    index.add("b", B)
    key, score = index.most_similar(A_CONSTANT)
    assert key == "a" and 0.6 < score < 1
    assert index.most_similar("while True: break")[0] == ""


def test_containment_measures_share_of_the_query_found():
    index = ShingleIndex(4)
    index.add("b", B)
    assert index.max_containment(B)[1] == 1.0
    assert index.max_containment(A)[1] < 0.2


def test_ast_shape_blanks_names_and_constants():
    assert ast_shape(A) == ast_shape(A_CONSTANT)
    assert ast_shape(A) != ast_shape(B)


def test_diversity_measures():
    assert mean_pairwise_similarity([A, A]) == 1.0
    assert mean_pairwise_similarity([A, B]) < 0.2
    assert distinct_ngrams([A, A]) == distinct_ngrams([A]) < distinct_ngrams([A, B])


def test_constants_can_be_blanked():
    assert shingles(A, literals=False) == shingles(A_CONSTANT, literals=False)
    assert shingles(A) != shingles(A_CONSTANT)
    index = ShingleIndex(3, literals=False)
    index.add("a", A)
    assert index.most_similar(A_CONSTANT) == ("a", 1.0)


def test_model_written_code_draws_no_warnings_on_the_terminal(recwarn):
    # `1if` is a tokenizer SyntaxWarning, `"\d"` an invalid escape: the model's, not the user's.
    import warnings

    from puzzles.similarity import ast_shape
    from sandbox.verifier import _compile_checker
    source = 'def f(x: int):\n    return x == (1if True else 2) and "\\d" != ""\n'
    warnings.simplefilter("always")
    assert ast_shape(source)
    _compile_checker(source)
    assert [str(w.message) for w in recwarn] == []
