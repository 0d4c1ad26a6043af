import pathlib
pathlib.Path('PWNED').write_text('ran')
graph = None
