"""The suite: folders mirror the packages (actors/ by family, scheduler/, foundation/, tracks/)."""
