from qsci.cli import main

raise SystemExit(main())
