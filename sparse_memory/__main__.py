from sparse_memory.cli import main

raise SystemExit(main())
