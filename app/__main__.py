"""`python -m app` behaves exactly like the `strata` console script."""

from app.cli import main

if __name__ == "__main__":
    main()
