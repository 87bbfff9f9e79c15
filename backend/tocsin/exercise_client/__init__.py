"""The command-line client of a Tocsin server's exercises API (`tocsin exercise ...`): it talks HTTP and prints,
nothing more (no database, no models, no services). It reads the API's answers through the server's own response
schemas (`tocsin.exercises.schemas`, pydantic only), so client and server cannot drift apart."""
