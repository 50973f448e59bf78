from fastgen.cli import main

raise SystemExit(main())
