placeholder: the build compiles Handler.java
