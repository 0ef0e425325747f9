"""The puzzle format, seeds and the store. Imports nothing else of the project."""

from puzzles.errors import PuzzleError, SelfplayError
from puzzles.format import (Puzzle, Solution, canonical_source, content_hash, parse_puzzle,
                            parse_solution, solution_from_body)
from puzzles.types import AnswerType, conforms, parse_type

__all__ = ["AnswerType", "Puzzle", "PuzzleError", "SelfplayError", "Solution",
           "canonical_source", "conforms", "content_hash", "parse_puzzle", "parse_solution",
           "parse_type", "solution_from_body"]
