from snapfs.cli.main import main

main()
