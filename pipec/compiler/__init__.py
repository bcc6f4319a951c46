"""The compiler: .pipe text -> AST -> checked graph -> render model -> generated runner module."""
