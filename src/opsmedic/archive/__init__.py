"""Log archiving: select files, write a verified archive somewhere safe, then delete originals."""
